/**
 * PINs per member: a PIN one member refuses costs one C_Login there and
 * takes only that member out, for good; a locked PIN says so; when every
 * member refuses, openHsm fails as on one token.
 */
import assert from "node:assert/strict";
import { openHsm, PinRefusedError } from "../../adapters/pkcs11/mod.ts";
import { openGroupFixture } from "./group_fixture.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("a member refusing its PIN costs one C_Login there, is out with the reason, and the others serve", async () => {
  await using group = await openGroupFixture({ pins: ["1111", "2222"] });
  const [a, b] = group.members;
  await using hsm = await openHsm({ members: [a, { ...b, pin: "9999" }], pin: group.pin });
  const results = await Promise.all(
    Array.from({ length: 16 }, () => hsm.encrypt(group.keys.aes.label, text("x"))),
  );
  assert.equal(results.length, 16);
  await new Promise((resolve) => setTimeout(resolve, 200)); // room for a probe, were there one
  const [up, out] = hsm.stats().members;
  assert.equal(up.state, "up");
  assert.equal(out.state, "out");
  assert.match(out.reason!, /C_Login refused the PIN: CKR_PIN_INCORRECT/);
  assert.equal(out.loginAttempts, 1, "the refused PIN was sent once");
  assert.equal(out.calls, 0);
});

Deno.test("a locked PIN says CKR_PIN_LOCKED in the member's reason", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  const [a, b] = group.members;
  group.tokens[1].faults!.set({ lockPinAfter: 1 });
  await assert.rejects(
    () => openHsm({ members: [{ ...b, pin: "9999" }], pin: group.pin }),
    /CKR_PIN_INCORRECT/,
  );
  await using hsm = await openHsm({ members: [a, { ...b, pin: "9999" }], pin: group.pin });
  const out = hsm.stats().members[1];
  assert.equal(out.state, "out");
  assert.match(out.reason!, /CKR_PIN_LOCKED.*the user PIN is locked/);
});

Deno.test("when every member refuses its PIN, openHsm fails with PinRefusedError after one C_Login each", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  group.faults!.set({ lockPinAfter: 2 }); // a third try would show as locked
  const wrong = group.members.map((m) => ({ ...m, pin: "9999" }));
  for (let attempt = 0; attempt < 2; attempt++) {
    await assert.rejects(
      () => openHsm({ members: wrong, pin: group.pin }),
      (error: Error) => error instanceof PinRefusedError && /CKR_PIN_INCORRECT/.test(error.message),
    );
  }
});
