/**
 * Faults (wrong PINs: login_test.ts; a hanging HSM: hang_test.ts): a missing
 * module, sessions closed, a token logged out and a module finalised behind
 * the pool's back, keys that vanished, a leftover operation on a session.
 */
import assert from "node:assert/strict";
import { HsmError, KeyNotFoundError, openHsm } from "../../adapters/pkcs11/mod.ts";
import {
  finaliseBehindTheBack,
  logOutBehindTheBack,
  moduleIsInitialised,
  openTestHsm,
  OtherBinding,
  pkcs11Tool,
} from "./fixture.ts";

const text = (s: string) => new TextEncoder().encode(s);
Deno.test("a missing module path names the path and the package to install", async () => {
  const missing = "/nonexistent/lib/libsofthsm2.so";
  await assert.rejects(
    () => openHsm({ library: missing, tokenLabel: "TestToken", pin: "1234" }),
    (error: Error) => {
      assert.ok(error instanceof HsmError);
      assert.match(error.message, new RegExp(missing.replaceAll("/", "\\/")));
      assert.match(error.message, /softhsm2/);
      assert.match(error.message, /apt-get install softhsm2/);
      return true;
    },
  );
});

Deno.test("an unknown token label names the label and the tokens there are", async () => {
  await using t = await openTestHsm();
  await assert.rejects(
    () => openHsm({ library: t.env.library, tokenLabel: "NoSuchToken", pin: t.env.pin }),
    /no token labelled "NoSuchToken".*"TestToken"/,
  );
});

Deno.test("after C_CloseAllSessions from another binding, a burst of safe-to-repeat calls sees no error", async () => {
  await using t = await openTestHsm({ pool: { max: 4 } });
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  const pair = await t.hsm.use((s) => s.generateEcKeyPair({ label: "p" }));
  const sealed = await t.hsm.ops.encrypt(key, text("before"));
  const signature = await t.hsm.ops.sign(pair.privateKey, text("signed"));
  await Promise.all(Array.from({ length: 8 }, () => t.hsm.encrypt("k", text("warm"))));
  {
    using other = new OtherBinding(t.env.library);
    other.pkcs11.C_CloseAllSessions(other.slot(t.env.tokenLabel)); // also the login's session
  }
  const burst = await Promise.allSettled([
    ...Array.from({ length: 8 }, (_, i) => t.hsm.encrypt("k", text(`after ${i}`))),
    t.hsm.ops.decrypt(key, sealed),
    t.hsm.ops.sign(pair.privateKey, text("x")),
    t.hsm.ops.verify(pair.publicKey, text("signed"), signature),
    t.hsm.ops.digest(text("x")),
  ]);
  for (const outcome of burst) assert.equal(outcome.status, "fulfilled", String(outcome));
  assert.equal(t.hsm.stats().loginAttempts, 2, "the token was logged in again once");
});

Deno.test("after C_Logout from another binding, encrypt by label logs in again and works", async () => {
  await using t = await openTestHsm({ pool: { max: 1 }, keyCacheMs: 0 });
  await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  logOutBehindTheBack(t.env);
  const { ciphertext, keyId } = await t.hsm.encrypt("k", text("still works"));
  assert.deepEqual(await t.hsm.decrypt(keyId, ciphertext), text("still works"));
  assert.equal(t.hsm.stats().loginAttempts, 2);
  assert.equal(t.hsm.stats().relogins, 1);
});

Deno.test("after C_Logout from another binding, a label with no key is KeyNotFoundError, not a TypeError", async () => {
  await using t = await openTestHsm({ pool: { max: 1 }, keyCacheMs: 0 });
  await t.hsm.use((s) => s.random(1)); // an idle session, logged out with the token below
  logOutBehindTheBack(t.env);
  const error = await t.hsm.encrypt("none", text("x")).catch((e) => e);
  assert.ok(error instanceof KeyNotFoundError, String(error));
  assert.equal(t.hsm.stats().loginAttempts, 2, "it logged in again to be sure");
});

Deno.test("a key destroyed through the handle is forgotten by the key cache", async () => {
  await using t = await openTestHsm({ keyCacheMs: 60_000 }, { spied: true });
  const keys = await t.hsm.use(async (s) => [
    await s.generateAesKey({ label: "rot" }),
    await s.generateAesKey({ label: "rot" }),
    await s.generateAesKey({ label: "rot" }),
  ]);
  await t.hsm.encrypt("rot", text("warm the cache"));
  await t.hsm.use((s) => s.destroyKey(keys[0]));
  for (let i = 0; i < 30; i++) {
    const { keyId } = await t.hsm.encrypt("rot", text(`n${i}`));
    assert.notEqual(keyId, keys[0].id);
  }
  assert.equal(
    t.spy!.returned("CKR_(KEY|OBJECT)_HANDLE_INVALID"),
    0,
    "the destroyed key was never tried",
  );
});

Deno.test("a key that vanished by other means is dropped on first failure and another of its label is used", async () => {
  await using t = await openTestHsm({ keyCacheMs: 60_000 });
  const keys = await t.hsm.use(async (s) => [
    await s.generateAesKey({ label: "rot" }),
    await s.generateAesKey({ label: "rot" }),
  ]);
  await t.hsm.encrypt("rot", text("warm the cache"));
  await pkcs11Tool(t.env, ["--delete-object", "--type", "secrkey", "--id", keys[0].id]);
  for (let i = 0; i < 20; i++) {
    const { keyId } = await t.hsm.encrypt("rot", text(`n${i}`));
    assert.equal(keyId, keys[1].id);
  }
});

Deno.test("after C_Finalize from another binding, the handle initialises the module again and calls succeed", async () => {
  await using t = await openTestHsm({ pool: { max: 2 } });
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  const sealed = await t.hsm.ops.encrypt(key, text("before"));
  finaliseBehindTheBack(t.env.library);
  const calls = await Promise.allSettled([
    t.hsm.encrypt("k", text("a")),
    t.hsm.encrypt("k", text("b")),
    t.hsm.ops.decrypt(key, sealed),
  ]);
  for (const outcome of calls) assert.equal(outcome.status, "fulfilled", String(outcome));
  const stats = t.hsm.stats();
  assert.equal(stats.reinitialisations, 1);
  assert.equal(stats.loginAttempts, 2, "logged in once more");
  assert.ok(moduleIsInitialised(t.env.library));
});

Deno.test("after C_Finalize and C_Initialize by someone else, the handle rebuilds its sessions", async () => {
  await using t = await openTestHsm({ pool: { max: 2 } });
  await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  await Promise.all([t.hsm.encrypt("k", text("a")), t.hsm.encrypt("k", text("b"))]);
  finaliseBehindTheBack(t.env.library);
  const other = new OtherBinding(t.env.library); // initialises it again
  assert.ok(other.initialisedHere);
  try {
    const { ciphertext, keyId } = await t.hsm.encrypt("k", text("after"));
    assert.deepEqual(await t.hsm.decrypt(keyId, ciphertext), text("after"));
  } finally {
    await t.hsm.close(); // it cannot tell whose initialisation this is: it finalises
    other.pkcs11.close();
  }
});

Deno.test("a session closed while lent out fails that call and is destroyed, not reused", async () => {
  await using t = await openTestHsm({ pool: { max: 1 } });
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  await assert.rejects(
    () =>
      t.hsm.use((s) => {
        s.module.pkcs11.C_CloseSession(s.handle); // as if closed elsewhere
        return s.encrypt(key, text("x"));
      }),
    (error: Error) => error instanceof HsmError && error.ckr === "CKR_SESSION_HANDLE_INVALID",
  );
  assert.equal(t.hsm.stats().destroyed, 1);
  assert.ok(await t.hsm.use((s) => s.encrypt(key, text("fresh session"))));
});

Deno.test("a leftover operation (CKR_OPERATION_ACTIVE) discards the session", async () => {
  await using t = await openTestHsm({ pool: { max: 1 } });
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  await assert.rejects(
    () =>
      t.hsm.use((s) => {
        s.module.pkcs11.C_DigestInit(s.handle, { mechanism: 0x250 }); // CKM_SHA256, never finished
        return s.digest(text("x"));
      }),
    (error: Error) => error instanceof HsmError && error.ckr === "CKR_OPERATION_ACTIVE",
  );
  assert.equal(t.hsm.stats().destroyed, 1);
  assert.ok(await t.hsm.use((s) => s.encrypt(key, text("clean session"))));
});

Deno.test("errors name the PKCS#11 function and the CKR code", async () => {
  await using t = await openTestHsm();
  const error = await t.hsm.use((s) => s.findKeyById("zz")).catch((e) => e);
  assert.ok(error instanceof TypeError && /key id must be hex/.test(error.message));
  const closed = await t.hsm.use((s) => {
    s.module.pkcs11.C_CloseSession(s.handle);
    return s.digest(text("x"));
  }).catch((e) => e);
  assert.ok(closed instanceof HsmError);
  assert.match(closed.message, /^C_DigestInit failed: CKR_SESSION_HANDLE_INVALID \(0xb3\)/);
});

{
  Deno.test("held keys keep working after the token was logged out and in again", async () => {
    await using t = await openTestHsm({ pool: { max: 2 } });
    const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
    const pair = await t.hsm.use((s) => s.generateEcKeyPair({ label: "p" }));
    const sealed = await t.hsm.ops.encrypt(key, text("before"));
    logOutBehindTheBack(t.env);
    assert.ok(await t.hsm.ops.encrypt(key, text("after")));
    assert.deepEqual(await t.hsm.ops.decrypt(key, sealed), text("before"));
    const signature = await t.hsm.ops.sign(pair.privateKey, text("signed"));
    assert.ok(await t.hsm.ops.verify(pair.publicKey, text("signed"), signature));
    assert.equal(t.hsm.stats().loginAttempts, 2, "logged in again once");
    const now = await t.hsm.use((s) => s.findKeyById(key.id)!);
    assert.notDeepEqual(
      now.handle,
      key.handle,
      "SoftHSM did renumber the key: the old handle is stale",
    );
  });
}

Deno.test("a held key without CKA_ID whose handle went stale says how to get a fresh one", async () => {
  await using t = await openTestHsm({ pool: { max: 1 } });
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const key = await t.hsm.use((s) => s.createAesKey(raw, { label: "noid", id: new Uint8Array() }));
  assert.equal(key.id, "");
  logOutBehindTheBack(t.env);
  await assert.rejects(
    () => t.hsm.ops.encrypt(key, text("x")),
    /handle of aes key "noid" is no longer valid.*no CKA_ID.*look it up again/,
  );
});
