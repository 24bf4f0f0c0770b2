/**
 * Failover in a group: a member that fails leaves the rotation at once, and
 * calls that are safe to repeat run on another member; use() callbacks are
 * never repeated. Faults come from the fault module in front of SoftHSM2.
 */
import assert from "node:assert/strict";
import { type HsmMemberEvent, NoMemberUpError, openHsm } from "../../adapters/pkcs11/mod.ts";
import { CKR, openGroupFixture } from "./group_fixture.ts";

const text = (s: string) => new TextEncoder().encode(s);

/** The events of `hsm` from now on, collected until the handle closes. */
function recordEvents(hsm: { events(): AsyncIterableIterator<HsmMemberEvent> }) {
  const seen: HsmMemberEvent[] = [];
  const done = (async () => {
    for await (const event of hsm.events()) seen.push(event);
  })();
  return { seen, done };
}

for (const code of ["DEVICE_REMOVED", "TOKEN_NOT_PRESENT", "DEVICE_ERROR"] as const) {
  Deno.test(`a member answering CKR_${code} goes out at once and every call succeeds on the other`, async () => {
    await using group = await openGroupFixture({ withFaults: true });
    const hsm = await openHsm({ members: group.members, pin: group.pin });
    const events = recordEvents(hsm);
    try {
      const { label, id } = group.keys.aes;
      const sealed = await hsm.encrypt(label, text("before"));
      group.tokens[1].faults!.set({ fail: CKR[code] });
      const results = await Promise.allSettled([
        ...Array.from({ length: 16 }, () => hsm.encrypt(label, text("during"))),
        ...Array.from({ length: 16 }, () => hsm.decrypt(id, sealed.ciphertext)),
      ]);
      for (const r of results) assert.equal(r.status, "fulfilled", String(r));
      const b = hsm.stats().members[1];
      assert.equal(b.state, "out");
      assert.match(b.reason!, new RegExp(`CKR_${code}`));
      assert.equal(hsm.stats().members[0].state, "up");
    } finally {
      group.faults!.reset();
      await hsm.close();
    }
    await events.done;
    const out = events.seen.find((e) => e.type === "member-out");
    assert.deepEqual(out && [out.type, out.member], ["member-out", "hsm-b"]);
  });
}

Deno.test("CKR_GENERAL_ERROR takes a member out only after generalErrors of them in a row", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  await using hsm = await openHsm({
    members: group.members,
    pin: group.pin,
    failover: { generalErrors: 3 },
  });
  const { label } = group.keys.aes;
  await hsm.encrypt(label, text("warm")); // keys cached on both members
  await hsm.encrypt(label, text("warm"));
  group.tokens[1].faults!.set({ fail: CKR.GENERAL_ERROR });
  const states: string[] = [];
  for (let i = 0; i < 12 && hsm.stats().members[1].state === "up"; i++) {
    await hsm.encrypt(label, text("x")); // every call succeeds, on a if b fails
    states.push(`${hsm.stats().members[1].errors}`);
  }
  try {
    const b = hsm.stats().members[1];
    assert.equal(b.state, "out");
    assert.equal(b.errors, 3, `errors on b after each call: ${states.join(",")}`);
    assert.match(b.reason!, /3 CKR_GENERAL_ERROR in a row/);
  } finally {
    group.faults!.reset();
  }
});

Deno.test("a use() callback is not run again on another member when its member fails", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  group.tokens[0].faults!.set({ fail: CKR.DEVICE_ERROR });
  group.tokens[1].faults!.set({ fail: CKR.DEVICE_ERROR });
  let runs = 0;
  try {
    await assert.rejects(
      () =>
        hsm.use((s) => {
          runs++;
          return s.digest(text("x"));
        }),
      /CKR_DEVICE_ERROR/,
    );
    assert.equal(runs, 1);
  } finally {
    group.faults!.reset();
  }
});

Deno.test("a call that hangs past callTimeoutMs takes its member out and runs on the other", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  group.faults!.set({ delayUs: 1000 }); // a network HSM: its calls move to worker threads
  const hsm = await openHsm({
    members: group.members,
    pin: group.pin,
    pool: { max: 2, validateAfterMs: 60_000 },
    failover: { callTimeoutMs: 2000 }, // well above a worker thread's start
  });
  try {
    const { label } = group.keys.aes;
    for (let i = 0; i < 40; i++) await hsm.encrypt(label, text("warm"));
    await Promise.all(Array.from({ length: 8 }, () => hsm.encrypt(label, text("warm"))));
    assert.ok(hsm.stats().members.every((m) => m.runsOn === "worker threads"));
    group.tokens[1].faults!.set({ delayUs: 1000, hang: true });
    const results = await Promise.allSettled(
      Array.from({ length: 16 }, () => hsm.encrypt(label, text("during"), { timeoutMs: 10_000 })),
    );
    for (const r of results) assert.equal(r.status, "fulfilled", String(r));
    const b = hsm.stats().members[1];
    assert.equal(b.state, "out");
    assert.match(b.reason!, /did not answer within 2000 ms/);
  } finally {
    group.faults!.reset(); // the stuck calls answer, so the handle can close
    await hsm.close();
  }
});

Deno.test("with every member out, calls fail at once naming each member's reason", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  group.faults!.set({ fail: CKR.DEVICE_REMOVED });
  try {
    await hsm.ops.digest(text("x")).catch(() => {});
    await hsm.ops.digest(text("x")).catch(() => {});
    const error = await hsm.ops.digest(text("x")).catch((e) => e);
    assert.ok(error instanceof NoMemberUpError, String(error));
    assert.match(error.message, /hsm-a: .*CKR_DEVICE_REMOVED.*; hsm-b: .*CKR_DEVICE_REMOVED/);
  } finally {
    group.faults!.reset();
  }
});

Deno.test("a wrong tag fails the call without counting against the member or moving it", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  const { label, id } = group.keys.aes;
  const sealed = await hsm.encrypt(label, text("secret"));
  const tampered = sealed.ciphertext.slice();
  tampered[tampered.length - 1] ^= 1;
  await assert.rejects(() => hsm.decrypt(id, tampered));
  for (const member of hsm.stats().members) {
    assert.equal(member.state, "up");
    assert.equal(member.errors, 0, `errors counted on ${member.name}`);
  }
});

Deno.test("a one-token handle counts its member's faults in errors, and never puts it out", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  await using hsm = await openHsm({ members: group.members.slice(0, 1), pin: group.pin });
  group.tokens[0].faults!.set({ fail: CKR.DEVICE_ERROR });
  try {
    await assert.rejects(() => hsm.ops.digest(text("x")));
  } finally {
    group.faults!.reset();
  }
  const [member] = hsm.stats().members;
  assert.equal(member.errors, 1);
  assert.equal(member.state, "up");
});
