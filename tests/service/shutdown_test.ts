import assert from "node:assert/strict";
import type { HsmLease } from "../../adapters/pkcs11/mod.ts";
import { provisionSoftHsm } from "../../tasks/setup/softhsm.ts";
import { spawnService } from "./child_service.ts";
import { eventually, KEY_LABEL, startTestService, TEST_PIN } from "./fixture.ts";

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

Deno.test("SIGTERM with requests in flight loses none of them and exits 0", async () => {
  await using softhsm = await provisionSoftHsm({ temporary: true, pin: TEST_PIN, setEnv: false });
  const child = await spawnService({
    args: ["--port", "0", "--ensure-key", KEY_LABEL],
    env: { ...softhsm.env, PKCS11_PIN: TEST_PIN },
    unset: ["DATABASE_URL"],
  });
  const url = child.url;

  // Each request sends half its body, so it is in flight (in the handler,
  // reading the body) until the test sends the rest: after the signal.
  const encoder = new TextEncoder();
  const writers: WritableStreamDefaultWriter<Uint8Array>[] = [];
  const replies = Array.from({ length: 5 }, (_, i) => {
    const body = new TransformStream<Uint8Array, Uint8Array>();
    const writer = body.writable.getWriter();
    writers.push(writer);
    writer.write(encoder.encode(`{"key_label":"${KEY_LABEL}",`));
    return fetch(`${url}/encrypt`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: body.readable,
    }).then(async (r) => ({ status: r.status, body: await r.text(), i }));
  });
  await eventually("5 requests in flight", async () => {
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const m = /^secret_manager_http_requests_in_flight (\d+)$/m.exec(metrics);
    return Number(m?.[1]) === 6; // the 5, plus this /metrics request
  });

  child.kill("SIGTERM");
  await eventually("the service is shutting down", () => {
    return child.lines.some((line) => line.includes("shutting down"));
  });
  for (const [i, writer] of writers.entries()) {
    await writer.write(encoder.encode(`"plaintext":"${btoa(`late ${i}`)}"}`));
    await writer.close();
  }
  const answered = await Promise.all(replies);
  const { code, stdout, stderr } = await child.exited();

  for (const reply of answered) {
    assert.equal(reply.status, 200, `request ${reply.i}: ${reply.body}\n${stderr}`);
  }
  assert.equal(code, 0, stderr);
  assert.match(stderr, /"stopped"/);
  assert.ok(!(stdout + stderr).includes(TEST_PIN), "the PIN is never logged");
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
