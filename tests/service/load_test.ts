import assert from "node:assert/strict";
import type { HsmLease } from "../../adapters/pkcs11/mod.ts";
import { eventually, KEY_LABEL, randomBytes, startTestService } from "./fixture.ts";

Deno.test("200 concurrent requests through a pool of 4 sessions all succeed", async () => {
  await using t = await startTestService(["--pool-max", "4", "--acquire-timeout-ms", "60000"]);
  const before = await t.poolStats();
  const payloads = Array.from({ length: 200 }, (_, i) => randomBytes(i * 37));
  const replies = await Promise.all(payloads.map(async (plaintext) => {
    const sealed = await t.post("/encrypt", {
      key_label: KEY_LABEL,
      plaintext: plaintext.toBase64(),
    });
    if (sealed.status !== 200) return sealed;
    return t.post("/decrypt", { key_label: KEY_LABEL, ...sealed.body });
  }));
  for (const [i, reply] of replies.entries()) {
    assert.equal(reply.status, 200, `request ${i}: ${reply.text}`);
    assert.deepEqual(Uint8Array.fromBase64(reply.body.plaintext), payloads[i], `request ${i}`);
  }
  const stats = await t.poolStats();
  assert.equal(stats.max_size, 4);
  assert.ok((stats.current_size as number) <= 4, `at most 4 sessions, got ${stats.current_size}`);
  assert.ok((stats.created as number) <= 4, "no session was replaced under load");
  assert.equal(stats.in_use, 0);
  assert.equal(stats.pending, 0);
  // Sessions were lent; concurrent operations share leases (worker batches, session loops),
  // so there are fewer leases than the 400 requests.
  assert.ok((stats.acquired as number) > (before.acquired as number));
});

Deno.test("/pool/stats shows sessions in use and requests waiting while the load runs", async () => {
  await using t = await startTestService(["--pool-max", "4", "--acquire-timeout-ms", "60000"]);
  // Hold every session, so the requests have to queue and the stats are predictable.
  const held: HsmLease[] = [];
  for (let i = 0; i < 4; i++) held.push(await t.service.hsm.acquire());
  const running = Array.from(
    { length: 20 },
    () => t.post("/encrypt", { key_label: KEY_LABEL, plaintext: btoa("queued") }),
  );
  await eventually("20 requests waiting", async () => (await t.poolStats()).pending === 20);
  const busy = await t.poolStats();
  assert.equal(busy.max_size, 4);
  assert.equal(busy.current_size, 4);
  assert.equal(busy.in_use, 4);
  assert.equal(busy.available, 0);
  assert.equal(busy.pending, 20);
  assert.equal(busy.breaker, "closed");
  for (const lease of held) await lease.release();
  for (const reply of await Promise.all(running)) assert.equal(reply.status, 200, reply.text);
  const after = await t.poolStats();
  assert.equal(after.in_use, 0);
  assert.equal(after.pending, 0);
  assert.equal(after.available, 4);
});
