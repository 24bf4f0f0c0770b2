/**
 * Recovery in a group: a member out of rotation is probed in the
 * background, one probe at a time with a doubling wait, and comes back by
 * itself once it answers. The backoff runs on the hand-driven clock of the
 * pool tests.
 */
import assert from "node:assert/strict";
import { openHsm } from "../../adapters/pkcs11/mod.ts";
import { Recovery } from "../../adapters/pkcs11/recovery.ts";
import { FakeClock } from "../pool/fake_clock.ts";
import { CKR, openGroupFixture } from "./group_fixture.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("a member that went out comes back by itself once it answers, with new sessions", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  const { label } = group.keys.aes;
  await Promise.all(Array.from({ length: 8 }, () => hsm.encrypt(label, text("warm"))));
  group.tokens[1].faults!.set({ fail: CKR.DEVICE_REMOVED });
  await Promise.all(Array.from({ length: 8 }, () => hsm.encrypt(label, text("during"))));
  const out = hsm.stats().members[1];
  assert.equal(out.state, "out");
  const events = hsm.events();
  group.faults!.reset();
  const next = await events.next();
  await events.return!();
  assert.deepEqual(next.value, { type: "member-up", member: "hsm-b" });
  const back = hsm.stats().members[1];
  assert.equal(back.state, "up");
  assert.equal(back.reason, undefined);
  assert.ok(back.pool.created > out.pool.created, "its sessions were made again");
  assert.ok(back.loginAttempts <= out.loginAttempts + 1, "logged in at most once more");
  await Promise.all(Array.from({ length: 16 }, () => hsm.encrypt(label, text("after"))));
  assert.ok(hsm.stats().members[1].calls > back.calls, "it serves again");
});

Deno.test("closing a handle with a member out stops its probes and leaves nothing behind", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  const hsm = await openHsm({ members: group.members, pin: group.pin });
  group.tokens[1].faults!.set({ fail: CKR.DEVICE_ERROR });
  try {
    await Promise.all(Array.from({ length: 8 }, () => hsm.ops.digest(text("x"))));
    assert.equal(hsm.stats().members[1].state, "out");
    await new Promise((resolve) => setTimeout(resolve, 100)); // a probe or two fail
  } finally {
    await hsm.close(); // the test's sanitizers fail it if a probe timer or thread is left
    group.faults!.reset();
  }
});

Deno.test("probes of a member wait probeMinMs, then twice as long after each failure, up to probeMaxMs", async () => {
  const clock = new FakeClock();
  const recovery = new Recovery(clock, 50, 400);
  const at: number[] = [];
  const start = clock.now();
  recovery.start({}, () => {
    at.push(clock.now() - start);
    return Promise.resolve(false);
  });
  await clock.advance(2000);
  assert.deepEqual(at.slice(0, 7), [50, 150, 350, 750, 1150, 1550, 1950]);
  await recovery.close();
  assert.equal(clock.pendingTimers, 0);
});

Deno.test("a member has one probe at a time: the next waits for the one running", async () => {
  const clock = new FakeClock();
  const recovery = new Recovery(clock, 50, 50);
  const member = {};
  let runs = 0;
  const { promise: answered, resolve: answer } = Promise.withResolvers<boolean>();
  recovery.start(member, () => {
    runs++;
    return answered;
  });
  recovery.start(member, () => Promise.resolve(true)); // already probed: ignored
  await clock.advance(1000);
  assert.equal(runs, 1);
  answer(true);
  await clock.advance(1000);
  assert.equal(runs, 1, "a probe that says done ends the probing");
  assert.equal(recovery.probing(member), false);
  await recovery.close();
});
