/**
 * A handle over several tokens (members): the same Hsm API, keys matched by
 * CKA_ID across members, and the bad configurations openHsm refuses.
 */
import assert from "node:assert/strict";
import { formatPrometheus } from "../../mod.ts";
import { type HsmFailoverOptions, openHsm } from "../../adapters/pkcs11/mod.ts";
import { CKR, openGroupFixture } from "./group_fixture.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("a group answers encrypt, decrypt, sign, verify and digest through the Hsm API", async () => {
  await using group = await openGroupFixture();
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  const { ciphertext, keyId } = await hsm.encrypt(group.keys.aes.label, text("secret"));
  assert.equal(keyId, group.keys.aes.id);
  assert.deepEqual(await hsm.decrypt(keyId, ciphertext), text("secret"));
  const [privateKey, publicKey] = await Promise.all([
    hsm.use((s) => s.findKeyById(group.keys.ec.id, "ec-private")!),
    hsm.use((s) => s.findKeyById(group.keys.ec.id, "ec-public")!),
  ]);
  const signature = await hsm.ops.sign(privateKey, text("signed"));
  assert.ok(await hsm.ops.verify(publicKey, text("signed"), signature));
  assert.ok(
    await crypto.subtle.verify(
      { name: "ECDSA", hash: "SHA-256" },
      group.keys.ec.publicKey,
      signature,
      text("signed"),
    ),
  );
  assert.equal((await hsm.ops.digest(text("x"))).length, 32);
});

Deno.test("what one member seals, another member opens (keys matched by CKA_ID)", async () => {
  await using group = await openGroupFixture();
  const [a, b] = group.members;
  await using onA = await openHsm({ members: [a], pin: group.pin });
  await using onB = await openHsm({ members: [b], pin: group.pin });
  const { ciphertext, keyId } = await onA.encrypt(group.keys.aes.label, text("moved"));
  assert.deepEqual(await onB.decrypt(keyId, ciphertext), text("moved"));
});

Deno.test("a held key's handle from one member works on every member", async () => {
  await using group = await openGroupFixture();
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  const key = await hsm.use((s) => s.findKeyById(group.keys.aes.id)!);
  const sealed = await Promise.all(
    Array.from({ length: 16 }, (_, i) => hsm.ops.encrypt(key, text(`m${i}`))),
  );
  for (const [i, s] of sealed.entries()) {
    assert.deepEqual(await hsm.ops.decrypt(key, s), text(`m${i}`));
  }
  assert.ok(hsm.stats().members.every((m) => m.calls > 0), "both members served");
});

Deno.test("concurrent calls spread over the members", async () => {
  await using group = await openGroupFixture();
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  await Promise.all(
    Array.from({ length: 32 }, () => hsm.encrypt(group.keys.aes.label, text("spread"))),
  );
  const [a, b] = hsm.stats().members;
  assert.ok(a.calls > 0 && b.calls > 0, `a: ${a.calls}, b: ${b.calls}`);
});

Deno.test("stats list each member and sum the members' pools", async () => {
  await using group = await openGroupFixture();
  await using hsm = await openHsm({ members: group.members, pin: group.pin, pool: { max: 2 } });
  await Promise.all(
    Array.from({ length: 8 }, () => hsm.encrypt(group.keys.aes.label, text("counted"))),
  );
  const stats = hsm.stats();
  assert.deepEqual(stats.members.map((m) => [m.name, m.state, m.reason]), [
    ["hsm-a", "up", undefined],
    ["hsm-b", "up", undefined],
  ]);
  assert.equal(stats.max, 4);
  assert.equal(stats.created, stats.members[0].pool.created + stats.members[1].pool.created);
  assert.deepEqual(stats.members.map((m) => m.pool.name), ["hsm:hsm-a", "hsm:hsm-b"]);
  assert.deepEqual(hsm.members.map((m) => m.name), ["hsm-a", "hsm-b"]);
});

Deno.test("Prometheus series carry each member in the pool label", async () => {
  await using group = await openGroupFixture();
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  const metrics = formatPrometheus(hsm.members.map((m) => m.pool));
  assert.match(metrics, /pool_size\{pool="hsm:hsm-a"\}/);
  assert.match(metrics, /pool_size\{pool="hsm:hsm-b"\}/);
});

Deno.test("a key only one member holds is listed in the other's missingKeys", async () => {
  await using group = await openGroupFixture({ keyOnFirstOnly: true });
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  const [a, b] = hsm.stats().members;
  assert.deepEqual(a.missingKeys, []);
  assert.deepEqual(b.missingKeys, [group.keys.onlyOnFirst!.id]);
});

Deno.test("a key only one member holds still serves every call (found on that member)", async () => {
  await using group = await openGroupFixture({ keyOnFirstOnly: true });
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  const label = group.keys.onlyOnFirst!.label;
  const sealed = await Promise.all(Array.from({ length: 8 }, () => hsm.encrypt(label, text("x"))));
  for (const { keyId, ciphertext } of sealed) {
    assert.deepEqual(await hsm.decrypt(keyId, ciphertext), text("x"));
  }
});

Deno.test("members with no key in common fail openHsm naming the members", async () => {
  await using group = await openGroupFixture();
  {
    await using onB = await openHsm({ members: [group.members[1]], pin: group.pin });
    await onB.use((s) => {
      for (const kind of ["aes", "ec-private", "ec-public"] as const) {
        for (const label of [group.keys.aes.label, group.keys.ec.label]) {
          for (const key of s.findKeys(label, kind)) s.destroyKey(key);
        }
      }
    });
  }
  await assert.rejects(
    () => openHsm({ members: group.members, pin: group.pin }),
    (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /"hsm-a", "hsm-b" have no key in common/);
      assert.match(error.message, /clone the keys/);
      return true;
    },
  );
});

Deno.test("the same token listed twice fails openHsm naming both members", async () => {
  await using group = await openGroupFixture();
  const a = group.members[0];
  await assert.rejects(
    () => openHsm({ members: [a, { ...a, name: "again" }], pin: group.pin }),
    /members 0 and 1 are the same token \("hsm-a".*list each token once/,
  );
});

Deno.test("two members with one name fail openHsm asking for distinct names", async () => {
  await using group = await openGroupFixture();
  const [a, b] = group.members;
  await assert.rejects(
    () => openHsm({ members: [{ ...a, name: "x" }, { ...b, name: "x" }], pin: group.pin }),
    /both named "x": give each member a distinct name/,
  );
});

Deno.test("an empty members list is a TypeError saying how to name one token", async () => {
  await assert.rejects(
    () => openHsm({ members: [], pin: "1234" }),
    (error: Error) =>
      error instanceof TypeError && /non-empty array.*for one token/.test(error.message),
  );
});

Deno.test("a misspelled member option is a TypeError naming the member and the nearest option", async () => {
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => openHsm({ members: [{ tokenLable: "hsm-a" } as any], pin: "1234" }),
    (error: Error) =>
      error instanceof TypeError &&
      /members\[0\]: 'tokenLable' is not an option; did you mean 'tokenLabel'\?/.test(
        error.message,
      ),
  );
});

Deno.test("members and a top-level tokenLabel exclude each other", async () => {
  await assert.rejects(
    () => openHsm({ members: [{ tokenLabel: "a" }], tokenLabel: "b", pin: "1234" }),
    /'tokenLabel' and 'members' exclude each other: move 'tokenLabel' into each member/,
  );
});

Deno.test("a member whose token is not there fails openHsm naming the member", async () => {
  await using group = await openGroupFixture();
  await assert.rejects(
    () => openHsm({ members: [group.members[0], { tokenLabel: "hsm-z" }], pin: group.pin }),
    /member 1 \("hsm-z"\) could not be opened: no token labelled "hsm-z"/,
  );
});

Deno.test("a token that does not answer does not keep openHsm from finding the others", async () => {
  await using group = await openGroupFixture({ tokens: 3, withFaults: true });
  group.tokens[1].faults!.set({ fail: CKR.DEVICE_ERROR });
  const [a, , c] = group.members;
  try {
    await using hsm = await openHsm({ members: [a, c], pin: group.pin });
    assert.deepEqual(hsm.stats().members.map((m) => m.state), ["up", "up"]);
  } finally {
    group.faults!.reset();
  }
});

Deno.test("in a group, a held key without CKA_ID is refused rather than used by its handle on another member", async () => {
  await using group = await openGroupFixture();
  await using hsm = await openHsm({ members: group.members, pin: group.pin });
  const key = await hsm.use((s) => s.generateAesKey({ label: "no-id", id: new Uint8Array(0) }));
  await assert.rejects(() => hsm.ops.encrypt(key, text("x")), /has no CKA_ID.*--set-id/);
});

Deno.test("a misspelled failover option is a TypeError naming the nearest one", async () => {
  const failover = { callTimeout: 1 } as HsmFailoverOptions;
  await assert.rejects(
    () => openHsm({ members: [{ tokenLabel: "a" }], pin: "1", failover }),
    /'failover\.callTimeout' is not an option; did you mean 'failover\.callTimeoutMs'\?/,
  );
});

Deno.test("failover probe and call bounds of 0 are a RangeError saying 1 ms or more", async () => {
  for (const failover of [{ probeMinMs: 0 }, { callTimeoutMs: 0 }]) {
    await assert.rejects(
      () => openHsm({ members: [{ tokenLabel: "a" }], pin: "1", failover }),
      (e: Error) =>
        e instanceof RangeError && /must be a number of 1 or more \(ms\)/.test(e.message),
    );
  }
});
