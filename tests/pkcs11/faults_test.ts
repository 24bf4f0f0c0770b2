/**
 * Faults (wrong PINs: login_test.ts): a missing module, sessions closed or logged out
 * behind the pool's back, a leftover operation on a session.
 */
import assert from "node:assert/strict";
import { HsmError, openHsm } from "../../adapters/pkcs11/mod.ts";
import { logOutBehindTheBack, openTestHsm, OtherBinding } from "./fixture.ts";

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

Deno.test("sessions closed behind the pool's back are replaced without the caller seeing it", async () => {
  await using t = await openTestHsm({ pool: { max: 2 } });
  await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  await Promise.all([t.hsm.encrypt("k", text("a")), t.hsm.encrypt("k", text("b"))]);
  assert.equal(t.hsm.stats().size, 2);
  {
    using other = new OtherBinding(t.env.library);
    other.pkcs11.C_CloseAllSessions(other.slot(t.env.tokenLabel)); // also the login anchor
  }
  const { ciphertext, keyId } = await t.hsm.encrypt("k", text("after"));
  assert.deepEqual(await t.hsm.decrypt(keyId, ciphertext), text("after"));
  const stats = t.hsm.stats();
  assert.equal(
    stats.destroyed,
    2,
    "both dead sessions were destroyed, and the encrypt ran again on a new one",
  );
  assert.equal(stats.loginAttempts, 2, "the token was logged in again once");
});

Deno.test("a token logged out behind the pool's back is logged in again", async () => {
  await using t = await openTestHsm({ pool: { max: 1 } });
  await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  logOutBehindTheBack(t.env);
  const { ciphertext, keyId } = await t.hsm.encrypt("k", text("still works"));
  assert.deepEqual(await t.hsm.decrypt(keyId, ciphertext), text("still works"));
  assert.equal(t.hsm.stats().loginAttempts, 2);
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

for (const engine of ["auto", "async", "workers"] as const) {
  Deno.test(`${engine} engine: held keys keep working after the token was logged out and in again`, async () => {
    await using t = await openTestHsm({ engine, workerThreads: 1, pool: { max: 2 } });
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
