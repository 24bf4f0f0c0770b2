import assert from "node:assert/strict";
import pkcs11js from "pkcs11js";
import { OtherBinding } from "../pkcs11/fixture.ts";
import { type JsonReply, KEY_LABEL, startTestService, TEST_PIN } from "./fixture.ts";

function assertRetryAfter(reply: JsonReply): void {
  assert.equal(reply.status, 503, reply.text);
  assert.match(reply.headers.get("retry-after") ?? "", /^[1-9]\d*$/, reply.text);
}

Deno.test("the first 503 after the token refuses the PIN carries Retry-After", async () => {
  await using t = await startTestService(["--pool-max", "2", "--breaker-threshold", "2"]);
  assert.equal((await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" })).status, 200);
  // Another application changes the PIN and closes every session: the service's PIN is wrong.
  using other = new OtherBinding(t.softhsm.library);
  const slot = other.slot(t.softhsm.tokenLabel);
  const session = other.pkcs11.C_OpenSession(
    slot,
    pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION,
  );
  other.pkcs11.C_SetPIN(session, TEST_PIN, "changed-behind-its-back");
  other.pkcs11.C_CloseAllSessions(slot);
  const first = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });
  assert.equal(first.body.error, "hsm_unavailable", first.text);
  assertRetryAfter(first);
  assertRetryAfter(await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" }));
  assertRetryAfter(await t.get("/healthz"));
});

Deno.test("a 503 /healthz carries Retry-After", async () => {
  await using t = await startTestService();
  const moved = `${t.softhsm.tokenDir}.gone`;
  await Deno.rename(t.softhsm.tokenDir, moved);
  try {
    assertRetryAfter(await t.get("/healthz"));
  } finally {
    await Deno.rename(moved, t.softhsm.tokenDir); // so the fixture deletes it
  }
});
