import assert from "node:assert/strict";
import type { HsmLease } from "../../adapters/pkcs11/mod.ts";
import { startTestService } from "./fixture.ts";

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
