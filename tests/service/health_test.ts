import assert from "node:assert/strict";
import type { HsmLease } from "../../adapters/pkcs11/mod.ts";
import { startTestService, TEST_PIN } from "./fixture.ts";

Deno.test("/healthz is 200 when a session can be handed out", async () => {
  await using t = await startTestService();
  const health = await t.get("/healthz");
  assert.equal(health.status, 200, health.text);
  assert.deepEqual(health.body, { status: "ok", breaker: "closed" });
});

Deno.test("/healthz stays 200 while every session is busy serving requests", async () => {
  await using t = await startTestService(["--pool-max", "2"]);
  const held: HsmLease[] = [await t.service.hsm.acquire(), await t.service.hsm.acquire()];
  try {
    const health = await t.get("/healthz");
    assert.equal(health.status, 200, health.text);
    assert.equal(health.body.reason, "all sessions are busy");
  } finally {
    for (const lease of held) await lease.release();
  }
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
