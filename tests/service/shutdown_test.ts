import assert from "node:assert/strict";
import type { HsmLease } from "../../adapters/pkcs11/mod.ts";
import { eventually, KEY_LABEL, startTestService } from "./fixture.ts";

Deno.test("shutdown with requests in flight finishes every one of them, then closes the pool", async () => {
  await using t = await startTestService(["--pool-max", "2", "--acquire-timeout-ms", "60000"]);
  const held: HsmLease[] = [await t.service.hsm.acquire(), await t.service.hsm.acquire()];
  const inFlight = Array.from(
    { length: 30 },
    (_, i) => t.post("/encrypt", { key_label: KEY_LABEL, plaintext: btoa(`in flight ${i}`) }),
  );
  await eventually("30 requests in flight", async () => (await t.poolStats()).pending === 30);
  const stopped = t.service.shutdown("test");
  for (const lease of held) await lease.release();
  const replies = await Promise.all(inFlight);
  assert.deepEqual(replies.map((r) => r.status), replies.map(() => 200));
  await stopped;
  assert.equal(t.service.hsm.stats().state, "closed");
  const stats = t.service.hsm.stats();
  assert.equal(stats.destroyed, stats.created, "every session closed");
  await assert.rejects(t.fetch("/healthz"), "no new connections after shutdown");
});

Deno.test("a request that arrives while the service drains gets 503 shutting_down", async () => {
  await using t = await startTestService(["--pool-max", "1", "--acquire-timeout-ms", "60000"]);
  const lease = await t.service.hsm.acquire();
  const inFlight = t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });
  await eventually("one request in flight", async () => (await t.poolStats()).pending === 1);
  const stopped = t.service.shutdown("test");
  const late = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });
  assert.equal(late.status, 503, late.text);
  assert.equal(late.body.error, "shutting_down");
  assert.equal(late.headers.get("retry-after"), "1");
  await lease.release();
  assert.equal((await inFlight).status, 200);
  await stopped;
});
