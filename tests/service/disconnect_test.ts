import assert from "node:assert/strict";
import { eventually, KEY_LABEL, startTestService } from "./fixture.ts";

Deno.test("a client that disconnects while waiting for a session leaves the queue", async () => {
  await using t = await startTestService(["--pool-max", "1", "--acquire-timeout-ms", "60000"]);
  const lease = await t.service.hsm.acquire();
  const client = new AbortController();
  const gone = t.fetch("/encrypt", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ key_label: KEY_LABEL, plaintext: btoa("never mind") }),
    signal: client.signal,
  }).catch((error) => error);
  await eventually("the request waits for the session", async () => {
    return (await t.poolStats()).pending === 1;
  });
  client.abort();
  assert.equal((await gone).name, "AbortError");
  await eventually("the waiter left the queue", async () => {
    const stats = await t.poolStats();
    return stats.pending === 0 && stats.aborted === 1;
  });
  await lease.release();
  const stats = await t.poolStats();
  assert.equal(stats.in_use, 0);
  assert.equal(stats.available, 1, "the session went back to the pool");
  assert.equal(stats.destroyed, 0);
  // And the next request is served by that same session.
  const next = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });
  assert.equal(next.status, 200);
  assert.equal((await t.poolStats()).created, 1);
});
