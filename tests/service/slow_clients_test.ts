import assert from "node:assert/strict";
import { serveOnTempToken } from "./child_service.ts";
import { KEY_LABEL } from "./fixture.ts";
import { RawClient, requestHead } from "./raw_http.ts";

// Deno.serve cannot bound how long a client takes over its headers or idles
// between requests (docs/service.md, "Limits against slow and rude clients"); the body is the
// service's to read, so it bounds that.

Deno.test("a body that trickles in past --body-timeout-ms gets 408 body_timeout and leaves no request in flight", async () => {
  await using child = await serveOnTempToken(["--body-timeout-ms", "200"]);
  using client = await RawClient.connect(child.url);
  await client.send(requestHead("POST", "/encrypt", { length: 100 }));
  await client.send(`{"key_label":"${KEY_LABEL}",`); // and nothing more
  const response = await client.readResponse();
  assert.equal(response.status, 408, response.body);
  assert.equal(JSON.parse(response.body).error, "body_timeout");
  assert.equal(response.headers.get("connection"), "close");
  // (Deno.serve keeps the socket until the client closes it: docs/service.md says so.)
  const metrics = await (await fetch(`${child.url}/metrics`)).text();
  assert.match(metrics, /^secret_manager_http_requests_in_flight 1$/m, "only this /metrics");
  // Nor does the lingering socket hold up a shutdown.
  child.killGroup("SIGTERM");
  const { code, stderr } = await child.exited();
  assert.equal(code, 0, stderr);
});

Deno.test("a body that arrives in time is not cut off by the body timeout", async () => {
  await using child = await serveOnTempToken(["--body-timeout-ms", "60000"]);
  using client = await RawClient.connect(child.url);
  const body = JSON.stringify({ key_label: KEY_LABEL, plaintext: btoa("in pieces") });
  await client.send(requestHead("POST", "/encrypt", { length: body.length }));
  for (const piece of [body.slice(0, 5), body.slice(5, 20), body.slice(20)]) {
    await client.send(piece);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const response = await client.readResponse();
  assert.equal(response.status, 200, response.body);
});

Deno.test("connections that never finish their headers do not hold up a shutdown", async () => {
  await using child = await serveOnTempToken();
  const stalled = await Promise.all(Array.from({ length: 10 }, async () => {
    const client = await RawClient.connect(child.url);
    await client.send("POST /encrypt HTTP/1.1\r\nhost: localhost\r\ncontent-le");
    return client;
  }));
  try {
    child.killGroup("SIGTERM");
    const { code, stderr } = await child.exited();
    assert.equal(code, 0, stderr);
    assert.match(stderr, /"stopped"/);
  } finally {
    for (const client of stalled) client.close();
  }
});
