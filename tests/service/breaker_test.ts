import assert from "node:assert/strict";
import pkcs11js from "pkcs11js";
import { OtherBinding } from "../pkcs11/fixture.ts";
import { eventually, KEY_LABEL, startTestService, TEST_PIN } from "./fixture.ts";

// A real outage, no mocks: another application on the same token changes the
// user PIN and closes every session (C_CloseAllSessions), which logs the token
// out. The service can no longer open a logged-in session (C_Login answers
// CKR_PIN_INCORRECT), exactly as when its HSM credentials are revoked. Putting
// the PIN back and logging out ends the outage; the service logs in by itself.
const OTHER_PIN = "changed-behind-its-back";

Deno.test("when the HSM refuses sessions, /healthz is 503 and requests fail fast, then both recover", async () => {
  await using t = await startTestService([
    "--pool-max",
    "2",
    "--breaker-threshold",
    "2",
    "--breaker-cooldown-ms",
    "3000", // long enough that no probe runs between the checks below
  ]);
  const before = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: btoa("kept") });
  assert.equal(before.status, 200);
  assert.equal((await t.get("/healthz")).status, 200);

  using other = new OtherBinding(t.softhsm.library);
  const slot = other.slot(t.softhsm.tokenLabel);
  const rw = pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION;
  const session = other.pkcs11.C_OpenSession(slot, rw); // the token is logged in: user state
  other.pkcs11.C_SetPIN(session, TEST_PIN, OTHER_PIN);
  other.pkcs11.C_CloseAllSessions(slot);

  // The first request waits through the failing session opens until the breaker opens.
  const first = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });
  assert.equal(first.status, 503, first.text);
  assert.equal(first.body.error, "hsm_unavailable");
  assert.match(first.body.message, /CKR_PIN_INCORRECT/);

  const health = await t.get("/healthz");
  assert.equal(health.status, 503, health.text);
  assert.equal(health.body.status, "unavailable");
  assert.equal(health.body.breaker, "open");
  assert.match(health.body.reason, /circuit breaker|CircuitOpenError/i);

  // While the breaker is open, requests are refused at once with a retry hint.
  const refused = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });
  assert.equal(refused.status, 503);
  assert.equal(refused.body.error, "hsm_unavailable");
  assert.match(refused.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
  const stats = await t.poolStats();
  assert.equal(stats.breaker, "open");
  assert.equal(stats.in_use, 0);

  // End the outage: the PIN is put back and the token logged out again.
  const fix = other.pkcs11.C_OpenSession(slot, rw);
  other.pkcs11.C_Login(fix, pkcs11js.CKU_USER, OTHER_PIN);
  other.pkcs11.C_SetPIN(fix, OTHER_PIN, TEST_PIN);
  other.pkcs11.C_Logout(fix);
  other.pkcs11.C_CloseSession(fix);

  await eventually("/healthz is 200 again", async () => (await t.get("/healthz")).status === 200);
  const after = await t.post("/decrypt", { key_label: KEY_LABEL, ...before.body });
  assert.equal(after.status, 200, after.text);
  assert.equal(atob(after.body.plaintext), "kept");
  const healed = await t.poolStats();
  assert.equal(healed.breaker, "closed");
  assert.equal(healed.in_use, 0);
  for (const reply of [first, health, refused]) assert.ok(!reply.text.includes(TEST_PIN));
  assert.ok(!t.logs.join("\n").includes(TEST_PIN));
  assert.ok(!t.logs.join("\n").includes(OTHER_PIN));
});

Deno.test("when the token's storage disappears, /healthz is 503 with the HSM's error", async () => {
  await using t = await startTestService();
  assert.equal((await t.get("/healthz")).status, 200);
  // SoftHSM keeps open sessions but can no longer read the token: C_GetTokenInfo fails.
  const moved = `${t.softhsm.tokenDir}.gone`;
  await Deno.rename(t.softhsm.tokenDir, moved);
  try {
    const health = await t.get("/healthz");
    assert.equal(health.status, 503, health.text);
    assert.equal(health.body.status, "unavailable");
    assert.match(health.body.reason, /CKR_GENERAL_ERROR/);
    assert.ok(!health.text.includes(TEST_PIN));
  } finally {
    await Deno.rename(moved, t.softhsm.tokenDir); // so the fixture deletes it
  }
  assert.equal((await t.poolStats()).in_use, 0);
});
