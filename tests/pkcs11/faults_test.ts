/**
 * Faults (wrong PINs: login_test.ts): a missing module, sessions closed or logged out
 * behind the pool's back, a leftover operation on a session.
 */
import assert from "node:assert/strict";
import { HsmError, openHsm } from "../../adapters/pkcs11/mod.ts";
import { openTestHsm, OtherBinding } from "./fixture.ts";

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
  assert.equal(stats.destroyed, 2, "both dead sessions were found by validate and destroyed");
  assert.equal(stats.loginAttempts, 2, "the token was logged in again once");
});

Deno.test("a token logged out behind the pool's back is logged in again", async () => {
  await using t = await openTestHsm({ pool: { max: 1 } });
  await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  {
    using other = new OtherBinding(t.env.library);
    const session = other.pkcs11.C_OpenSession(other.slot(t.env.tokenLabel), 0x6);
    other.pkcs11.C_Logout(session); // login state is the application's: this logs everyone out
    other.pkcs11.C_CloseSession(session);
  }
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
