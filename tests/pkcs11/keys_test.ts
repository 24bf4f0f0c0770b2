/**
 * Keys: generated and found by label, picked at random among a label's keys
 * (rotation), token objects visible from every session, session objects gone
 * with their session; keys without a CKA_ID refused before they could
 * seal anything.
 */
import assert from "node:assert/strict";
import { KeyNotFoundError } from "../../adapters/pkcs11/mod.ts";
import { openTestHsm, pkcs11Tool } from "./fixture.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("keys are found by label, and only keys of the asked kind", async () => {
  await using t = await openTestHsm();
  await t.hsm.use(async (s) => {
    const a = await s.generateAesKey({ label: "orders" });
    const b = await s.generateAesKey({ label: "orders" });
    await s.generateAesKey({ label: "other" });
    await s.generateEcKeyPair({ label: "orders" });
    const found = s.findKeys("orders", "aes").map((k) => k.id).sort();
    assert.deepEqual(found, [a.id, b.id].sort());
    assert.equal(s.findKeys("orders", "ec-private").length, 1);
    assert.equal(s.findKeys("missing").length, 0);
  });
});

Deno.test("decrypt with a label uses only a key of that label; an id outside it is KeyNotFoundError", async () => {
  await using t = await openTestHsm();
  await t.hsm.use(async (s) => {
    await s.generateAesKey({ label: "tenant-a" });
    await s.generateAesKey({ label: "tenant-b" });
  });
  const sealed = await t.hsm.encrypt("tenant-a", text("for a"));
  const opened = await t.hsm.decrypt(sealed.keyId, sealed.ciphertext, { label: "tenant-a" });
  assert.equal(new TextDecoder().decode(opened), "for a");
  await assert.rejects(
    t.hsm.decrypt(sealed.keyId, sealed.ciphertext, { label: "tenant-b" }),
    KeyNotFoundError,
  );
});

Deno.test("the random key lookup spreads over every key with the label", async () => {
  await using t = await openTestHsm();
  const ids = await t.hsm.use(async (s) => {
    const keys = [
      await s.generateAesKey({ label: "rotating" }),
      await s.generateAesKey({ label: "rotating" }),
      await s.generateAesKey({ label: "rotating" }),
    ];
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(s.findRandomKey("rotating")!.id);
    return { keys: keys.map((k) => k.id).sort(), seen: [...seen].sort() };
  });
  assert.deepEqual(ids.seen, ids.keys);
});

Deno.test("the random key lookup gives undefined for an unknown label", async () => {
  await using t = await openTestHsm();
  assert.equal(await t.hsm.use((s) => s.findRandomKey("nope")), undefined);
});

Deno.test("a key lookup with an unknown kind names the kinds there are", async () => {
  await using t = await openTestHsm();
  await t.hsm.use((s) => {
    for (
      const find of [
        () => s.findKeys("orders", "ec" as never),
        () => s.findRandomKey("orders", "rsa" as never),
        () => s.findKeyById("00ff", "toString" as never),
      ]
    ) {
      assert.throws(find, {
        name: "TypeError",
        message: /key kind must be "aes", "ec-private" or "ec-public", got "\w+"/,
      });
    }
  });
});

Deno.test("a token key made in one session works in another session", async () => {
  await using t = await openTestHsm({ pool: { max: 2 } });
  const lease1 = await t.hsm.acquire();
  const lease2 = await t.hsm.acquire();
  try {
    const key = await lease1.resource.generateAesKey({ label: "shared" });
    const sealed = await lease1.resource.encrypt(key, text("hi"));
    const again = lease2.resource.findKeyById(key.id)!;
    assert.deepEqual(await lease2.resource.decrypt(again, sealed), text("hi"));
  } finally {
    await lease1.release();
    await lease2.release();
  }
});

Deno.test("a session key dies with the session that made it", async () => {
  await using t = await openTestHsm({ pool: { max: 2 } });
  const lease = await t.hsm.acquire();
  await lease.resource.generateAesKey({ label: "ephemeral", token: false });
  assert.equal(lease.resource.findKeys("ephemeral").length, 1);
  await lease.destroy("test: end the session");
  assert.equal(await t.hsm.use((s) => s.findKeys("ephemeral").length), 0);
});

Deno.test("encrypt by label returns the key id that decrypts it", async () => {
  await using t = await openTestHsm();
  await t.hsm.use((s) => s.generateAesKey({ label: "svc" }));
  const { ciphertext, keyId } = await t.hsm.encrypt("svc", text("payload"));
  assert.match(keyId, /^[0-9a-f]{32}$/);
  assert.deepEqual(await t.hsm.decrypt(keyId, ciphertext), text("payload"));
});

Deno.test("encrypt with an unknown label fails with KeyNotFoundError", async () => {
  await using t = await openTestHsm();
  await assert.rejects(() => t.hsm.encrypt("nope", text("x")), KeyNotFoundError);
  await assert.rejects(() => t.hsm.decrypt("00ff", text("x")), KeyNotFoundError);
});

Deno.test("a destroyed key is no longer found", async () => {
  await using t = await openTestHsm();
  await t.hsm.use(async (s) => {
    const key = await s.generateAesKey({ label: "gone" });
    s.destroyKey(key);
    assert.equal(s.findRandomKey("gone"), undefined);
  });
});

Deno.test("a key made with createAesKey is a token key that encrypt(label) finds", async () => {
  await using t = await openTestHsm();
  const raw = crypto.getRandomValues(new Uint8Array(32));
  await t.hsm.use((s) => s.createAesKey(raw, { label: "imported" }));
  const { ciphertext } = await t.hsm.encrypt("imported", text("found"));
  const webKey = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["decrypt"]);
  const opened = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: ciphertext.subarray(0, 12) },
    webKey,
    ciphertext.subarray(12),
  );
  assert.deepEqual(new Uint8Array(opened), text("found"));
});

Deno.test("encrypt refuses a label with a key without CKA_ID, and says how to give it one", async () => {
  await using t = await openTestHsm({ keyCacheMs: 0 });
  await pkcs11Tool(t.env, ["--keygen", "--key-type", "AES:32", "--label", "noid"]);
  const error = await t.hsm.encrypt("noid", text("x")).catch((e) => e);
  assert.match(String(error?.message), /labelled "noid" have no CKA_ID/);
  const fix = /\(pkcs11-tool (--login --type secrkey --label "noid" --set-id) <hex>\)/.exec(
    error.message,
  );
  assert.ok(fix, "the message gives the pkcs11-tool command");
  await pkcs11Tool(t.env, ["--type", "secrkey", "--label", "noid", "--set-id", "c0ffee"]);
  const { ciphertext, keyId } = await t.hsm.encrypt("noid", text("now it works"));
  assert.equal(keyId, "c0ffee");
  assert.deepEqual(await t.hsm.decrypt(keyId, ciphertext), text("now it works"));
});

Deno.test("decrypt refuses an empty key id as bad input, whether or not the cache is warm", async () => {
  await using t = await openTestHsm();
  await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  const { ciphertext } = await t.hsm.encrypt("k", text("x"));
  await assert.rejects(() => t.hsm.decrypt("", ciphertext), TypeError);
});

Deno.test("a key added under a label is used once the cache entry expires", async () => {
  await using t = await openTestHsm({ keyCacheMs: 0 });
  const first = await t.hsm.use((s) => s.generateAesKey({ label: "rot" }));
  assert.equal((await t.hsm.encrypt("rot", text("a"))).keyId, first.id);
  await t.hsm.use((s) => s.destroyKey(first));
  const second = await t.hsm.use((s) => s.generateAesKey({ label: "rot" }));
  assert.equal((await t.hsm.encrypt("rot", text("b"))).keyId, second.id);
});
