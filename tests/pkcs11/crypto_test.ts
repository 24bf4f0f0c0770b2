/**
 * The HSM's crypto checked by an independent implementation (WebCrypto).
 */
import assert from "node:assert/strict";
import { openTestHsm } from "./fixture.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("an ECDSA P-256 signature made in the HSM verifies with WebCrypto", async () => {
  await using t = await openTestHsm();
  const data = text("signed by the HSM");
  const { signature, point } = await t.hsm.use(async (s) => {
    const pair = await s.generateEcKeyPair({ label: "signer" });
    return {
      signature: await s.sign(pair.privateKey, data),
      point: s.exportEcPublicKey(pair.publicKey),
    };
  });
  const publicKey = await crypto.subtle.importKey(
    "raw",
    point,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["verify"],
  );
  const ecdsa = { name: "ECDSA", hash: "SHA-256" };
  assert.equal(signature.length, 64);
  assert.equal(await crypto.subtle.verify(ecdsa, publicKey, signature, data), true);
  assert.equal(await crypto.subtle.verify(ecdsa, publicKey, signature, text("other")), false);
});

Deno.test("a WebCrypto ECDSA signature is checked by the HSM's verify", async () => {
  await using t = await openTestHsm();
  const data = text("message");
  await t.hsm.use(async (s) => {
    const pair = await s.generateEcKeyPair({ label: "verifier", token: false });
    const signature = await s.sign(pair.privateKey, data);
    assert.equal(await s.verify(pair.publicKey, data, signature), true);
    const forged = signature.slice();
    forged[10] ^= 1;
    assert.equal(await s.verify(pair.publicKey, data, forged), false);
  });
});

async function knownKey() {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const webKey = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
  return { raw, webKey };
}

Deno.test("AES-GCM made in the HSM with a known key decrypts with WebCrypto", async () => {
  await using t = await openTestHsm();
  const { raw, webKey } = await knownKey();
  const plaintext = crypto.getRandomValues(new Uint8Array(1000));
  const aad = text("header");
  const sealed = await t.hsm.use((s) =>
    s.encrypt(s.createAesKey(raw, { label: "known" }), plaintext, aad)
  );
  assert.equal(sealed.length, 12 + plaintext.length + 16);
  const opened = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: sealed.subarray(0, 12), additionalData: aad },
    webKey,
    sealed.subarray(12),
  );
  assert.deepEqual(new Uint8Array(opened), plaintext);
});

Deno.test("AES-GCM made by WebCrypto decrypts in the HSM with the same key", async () => {
  await using t = await openTestHsm();
  const { raw, webKey } = await knownKey();
  const plaintext = text("from WebCrypto to the HSM");
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const body = new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv }, webKey, plaintext),
  );
  const sealed = new Uint8Array([...iv, ...body]);
  const opened = await t.hsm.use((s) => s.decrypt(s.createAesKey(raw, { label: "known" }), sealed));
  assert.deepEqual(opened, plaintext);
});

Deno.test("an empty plaintext round-trips through the HSM and WebCrypto", async () => {
  await using t = await openTestHsm();
  const { raw, webKey } = await knownKey();
  const sealed = await t.hsm.use((s) =>
    s.encrypt(s.createAesKey(raw, { label: "k" }), new Uint8Array(0))
  );
  assert.equal(sealed.length, 12 + 16);
  const opened = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: sealed.subarray(0, 12) },
    webKey,
    sealed.subarray(12),
  );
  assert.equal(opened.byteLength, 0);
  const back = await t.hsm.use((s) => s.decrypt(s.createAesKey(raw, { label: "k" }), sealed));
  assert.equal(back.length, 0);
  assert.deepEqual(
    await t.hsm.use((s) => s.digest(new Uint8Array(0))),
    new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(0))),
  );
});

Deno.test("AES-GCM rejects a tampered ciphertext or the wrong AAD with CKR_ENCRYPTED_DATA_INVALID", async () => {
  await using t = await openTestHsm();
  await t.hsm.use(async (s) => {
    const key = await s.generateAesKey({ label: "k", token: false });
    const sealed = await s.encrypt(key, text("secret"), text("aad"));
    const tampered = sealed.slice();
    tampered[14] ^= 1;
    await assert.rejects(() => s.decrypt(key, tampered, text("aad")), /CKR_ENCRYPTED_DATA_INVALID/);
    await assert.rejects(() => s.decrypt(key, sealed, text("other")), /CKR_ENCRYPTED_DATA_INVALID/);
    assert.deepEqual(await s.decrypt(key, sealed, text("aad")), text("secret"));
  });
});

Deno.test("every AES-GCM encryption uses a fresh IV", async () => {
  await using t = await openTestHsm();
  const ivs = await t.hsm.use(async (s) => {
    const key = await s.generateAesKey({ label: "k", token: false });
    const out = new Set<string>();
    for (let i = 0; i < 50; i++) {
      out.add((await s.encrypt(key, text("same"))).subarray(0, 12).join());
    }
    return out;
  });
  assert.equal(ivs.size, 50);
});

Deno.test("the HSM's SHA-256 equals WebCrypto's", async () => {
  await using t = await openTestHsm();
  const data = crypto.getRandomValues(new Uint8Array(4096));
  const ours = await t.hsm.use((s) => s.digest(data));
  assert.deepEqual(ours, new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
});

Deno.test("random bytes come in the length asked for, and differ", async () => {
  await using t = await openTestHsm();
  const [a, b] = await t.hsm.use((s) => [s.random(32), s.random(32)]);
  assert.equal(a.length, 32);
  assert.notDeepEqual(a, b);
});

Deno.test("random(0) is an empty array, with no call that could break the session", async () => {
  await using t = await openTestHsm({ pool: { max: 1 } });
  assert.deepEqual(await t.hsm.use((s) => s.random(0)), new Uint8Array(0));
  assert.equal(t.hsm.stats().destroyed, 0, "the session was kept");
});

Deno.test("bad input to an operation names what was wrong", async () => {
  await using t = await openTestHsm();
  await t.hsm.use(async (s) => {
    const key = await s.generateAesKey({ label: "k", token: false });
    await assert.rejects(() => s.sign(key, text("x")), /needs an "ec-private" key, got "aes"/);
    await assert.rejects(() => s.decrypt(key, new Uint8Array(5)), /at least 28 bytes/);
    assert.throws(
      () => s.createAesKey(new Uint8Array(7), { label: "x" }),
      /16, 24 or 32 bytes, got 7/,
    );
    await assert.rejects(() => s.generateAesKey({ label: "" }), /non-empty string/);
  });
});
