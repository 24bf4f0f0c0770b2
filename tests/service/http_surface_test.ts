import assert from "node:assert/strict";
import { serveOnTempToken } from "./child_service.ts";
import { KEY_LABEL } from "./fixture.ts";
import { RawClient, requestHead } from "./raw_http.ts";

Deno.test("HEAD carries the Content-Length GET would send, and no body", async () => {
  await using child = await serveOnTempToken();
  const get = await fetch(`${child.url}/healthz`);
  const getLength = new TextEncoder().encode(await get.text()).length;
  assert.equal(get.status, 200);
  using client = await RawClient.connect(child.url);
  await client.send(requestHead("HEAD", "/healthz", { headers: { connection: "close" } }));
  const head = await client.readResponse(true);
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("content-length"), String(getLength));
  assert.equal(await client.readToEnd(), "", "no body after the head");
});

Deno.test("POST /encrypt-pool, the Go secret manager's endpoint, works as /encrypt", async () => {
  await using child = await serveOnTempToken();
  const post = (path: string, body: unknown) =>
    fetch(`${child.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const sealed = await post("/encrypt-pool", { key_label: KEY_LABEL, plaintext: btoa("go") });
  assert.equal(sealed.status, 200);
  const { ciphertext, key_id } = await sealed.json();
  const opened = await post("/decrypt", { key_label: KEY_LABEL, ciphertext, key_id });
  assert.equal(atob((await opened.json()).plaintext), "go");
});
