/**
 * The token group the multi-member tests and the HSM benchmark start from
 * (tasks/setup/token_group.ts): every token holds the same keys, so work done on one member is
 * undone on another, and each token keeps its own PIN.
 *
 * @module
 */
import assert from "node:assert/strict";
import { openHsm } from "../../adapters/pkcs11/mod.ts";
import { CKR, openGroupFixture } from "../pkcs11/group_fixture.ts";

const data = new TextEncoder().encode("one key, two tokens");

Deno.test("every token of a group holds the same AES key: what one encrypts, the other decrypts", async () => {
  await using group = await openGroupFixture();
  const [a, b] = group.members;
  let sealed;
  {
    await using hsm = await openHsm({ library: a.library, tokenLabel: a.tokenLabel, pin: a.pin });
    sealed = await hsm.encrypt(group.keys.aes.label, data);
    assert.equal(sealed.keyId, group.keys.aes.id);
  }
  await using hsm = await openHsm({ library: b.library, tokenLabel: b.tokenLabel, pin: b.pin });
  assert.deepEqual(await hsm.decrypt(sealed.keyId, sealed.ciphertext), data);
});

Deno.test("every token of a group holds the same EC pair: each token's signature verifies with the one public key", async () => {
  await using group = await openGroupFixture({ tokens: 3 });
  for (const m of group.members) {
    await using hsm = await openHsm({ library: m.library, tokenLabel: m.tokenLabel, pin: m.pin });
    const key = await hsm.use((s) => s.findKeyById(group.keys.ec.id, "ec-private"));
    assert.ok(key, `${m.name} holds the private key`);
    const signature = await hsm.ops.sign(key, data);
    const verified = await crypto.subtle.verify(
      { name: "ECDSA", hash: "SHA-256" },
      group.keys.ec.publicKey,
      signature,
      data,
    );
    assert.ok(verified, `${m.name}'s signature verifies`);
  }
});

Deno.test("a group key on the first token only is missing from the others", async () => {
  await using group = await openGroupFixture({ keyOnFirstOnly: true });
  const only = group.keys.onlyOnFirst!;
  const found = [];
  for (const m of group.members) {
    await using hsm = await openHsm({ library: m.library, tokenLabel: m.tokenLabel, pin: m.pin });
    found.push(await hsm.use((s) => s.findKeyById(only.id, "aes")) !== undefined);
  }
  assert.deepEqual(found, [true, false]);
});

Deno.test("tokens of a group keep their own PINs", async () => {
  await using group = await openGroupFixture({ pins: ["1111", "2222"] });
  const [a, b] = group.members;
  assert.deepEqual([a.pin, b.pin], ["1111", "2222"]);
  await assert.rejects(
    () => openHsm({ library: b.library, tokenLabel: b.tokenLabel, pin: a.pin }),
    /CKR_PIN_INCORRECT/,
  );
  await using hsm = await openHsm({ library: b.library, tokenLabel: b.tokenLabel, pin: b.pin });
  assert.ok(await hsm.encrypt(group.keys.aes.label, data));
});

Deno.test("with faults, one token set to fail is dead to a handle while the other serves", async () => {
  await using group = await openGroupFixture({ withFaults: true });
  const [a, b] = group.members;
  assert.equal(a.library, group.faults!.library);
  await using hsm = await openHsm({ library: b.library, tokenLabel: b.tokenLabel, pin: b.pin });
  group.tokens[0].faults!.set({ fail: CKR.DEVICE_REMOVED });
  await assert.rejects(
    () => openHsm({ library: a.library, tokenLabel: a.tokenLabel, pin: a.pin }),
    /CKR_DEVICE_REMOVED/,
  );
  assert.ok(await hsm.encrypt(group.keys.aes.label, data));
});
