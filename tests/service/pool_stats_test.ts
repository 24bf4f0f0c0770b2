import assert from "node:assert/strict";
import { startTestService } from "./fixture.ts";

Deno.test("/pool/stats has the operators' field names and the rest of stats(), one object per pool", async () => {
  await using t = await startTestService(["--pool-min", "1", "--pool-max", "3"]);
  const { status, body } = await t.get("/pool/stats");
  assert.equal(status, 200);
  assert.equal(body.pools.length, 1);
  const [hsm] = body.pools;
  assert.equal(hsm.name, `hsm:${t.softhsm.tokenLabel}`);
  assert.equal(hsm.max_size, 3);
  assert.equal(hsm.min_size, 1);
  for (const field of ["current_size", "available", "in_use", "pending", "timed_out"]) {
    assert.equal(typeof hsm[field], "number", field);
  }
  assert.equal(hsm.breaker, "closed");
  assert.equal(hsm.state, "open");
  for (
    const field of ["created", "destroyed", "acquired", "released", "aborted", "create_errors"]
  ) {
    assert.equal(typeof hsm[field], "number", field);
  }
  assert.deepEqual(Object.keys(hsm.acquire_wait_ms).sort(), ["max", "p50", "p99"]);
  assert.equal(hsm.token_label, t.softhsm.tokenLabel);
});
