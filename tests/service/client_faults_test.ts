import assert from "node:assert/strict";
import { parseExposition } from "../metrics/prometheus_text.ts";
import { type ServedChild, serveOnTempToken } from "./child_service.ts";
import { eventually, KEY_LABEL, startTestService } from "./fixture.ts";
import { RawClient, requestHead } from "./raw_http.ts";

/** `secret_manager_http_requests_total` samples as [path, method, code, count]. */
async function requestCounts(url: string): Promise<[string, string, string, number][]> {
  const families = parseExposition(await (await fetch(`${url}/metrics`)).text());
  return families.get("secret_manager_http_requests_total")!.samples.map((s) => [
    s.labels.path,
    s.labels.method,
    s.labels.code,
    s.value,
  ]);
}

/** Requests to `path` counted so far, by status code. */
async function countsFor(url: string, path: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const [p, , code, n] of await requestCounts(url)) {
    if (p === path) out.set(code, (out.get(code) ?? 0) + n);
  }
  return out;
}

function errorLines(child: ServedChild): string[] {
  return child.lines.filter((line) => line.includes('"level":"error"'));
}

Deno.test("a body shorter than its Content-Length, then a half-close, gets 400 incomplete_body", async () => {
  await using child = await serveOnTempToken();
  using client = await RawClient.connect(child.url);
  await client.send(requestHead("POST", "/encrypt", { length: 100 }));
  await client.send(`{"key_label":"${KEY_LABEL}",`);
  await client.closeWrite();
  const response = await client.readResponse();
  assert.equal(response.status, 400, response.body);
  assert.equal(JSON.parse(response.body).error, "incomplete_body");
  assert.match(JSON.parse(response.body).message, /of the 100 its Content-Length announced/);
  await eventually("it is counted", async () => (await countsFor(child.url, "/encrypt")).size > 0);
  assert.deepEqual(await countsFor(child.url, "/encrypt"), new Map([["400", 1]]));
  assert.deepEqual(errorLines(child), []);
});

Deno.test("clients that hang up mid-body are neither 5xx in /metrics nor errors in the log", async () => {
  await using child = await serveOnTempToken();
  const hangUps = 50;
  await Promise.all(Array.from({ length: hangUps }, async () => {
    using client = await RawClient.connect(child.url);
    await client.send(requestHead("POST", "/encrypt", { length: 200 }));
    await client.send(`{"key_label":"${KEY_LABEL}","plaintext":"`);
  }));
  let counts = new Map<string, number>();
  await eventually("every hang-up is counted", async () => {
    counts = await countsFor(child.url, "/encrypt");
    return [...counts.values()].reduce((a, b) => a + b, 0) === hangUps;
  });
  for (const code of counts.keys()) assert.match(code, /^(400|499)$/, `code ${code}`);
  assert.deepEqual(errorLines(child), []);
  const pool = (await (await fetch(`${child.url}/pool/stats`)).json()).pools[0];
  assert.equal(pool.in_use, 0);
  assert.equal(pool.breaker, "closed");
});

Deno.test("a client that hangs up while its request waits for a session counts as 499, not an error", async () => {
  await using t = await startTestService(["--pool-max", "1", "--acquire-timeout-ms", "60000"]);
  const lease = await t.service.hsm.acquire();
  try {
    const body = JSON.stringify({ key_label: KEY_LABEL, plaintext: "" });
    const client = await RawClient.connect(t.service.url);
    await client.send(requestHead("POST", "/encrypt", { length: body.length }) + body);
    await eventually("the request waits", async () => (await t.poolStats()).pending === 1);
    client.close();
    await eventually("it is counted as 499", async () => {
      const counts = await countsFor(t.service.url, "/encrypt");
      return counts.get("499") === 1 && counts.size === 1;
    });
  } finally {
    await lease.release();
  }
  assert.deepEqual(t.logs.filter((line) => line.includes('"level":"error"')), []);
  assert.equal((await t.poolStats()).aborted, 1);
});

Deno.test('methods outside the standard set share the metric label "other"', async () => {
  await using child = await serveOnTempToken();
  for (let i = 0; i < 20; i++) {
    using client = await RawClient.connect(child.url);
    await client.send(requestHead(`M${crypto.randomUUID().slice(0, 8).toUpperCase()}`, "/encrypt"));
    assert.equal((await client.readResponse()).status, 405);
  }
  await (await fetch(`${child.url}/nowhere-${crypto.randomUUID()}`)).body?.cancel();
  let samples: [string, string, string, number][] = [];
  await eventually("all 21 are counted", async () => {
    samples = await requestCounts(child.url);
    return samples.reduce((n, [, , , c]) => n + c, 0) >= 21;
  });
  const methods = new Set(samples.map(([, method]) => method));
  assert.deepEqual([...methods].sort(), ["GET", "other"]);
  for (const [path] of samples) assert.ok(["/encrypt", "/metrics", "other"].includes(path), path);
  assert.ok(samples.some(([path]) => path === "other"), "the random path counts as other");
  assert.equal(samples.find(([p, m]) => p === "/encrypt" && m === "other")?.[3], 20);
});
