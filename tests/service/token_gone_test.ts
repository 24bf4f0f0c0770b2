import assert from "node:assert/strict";
import { type ServedChild, serveOnTempToken } from "./child_service.ts";
import { eventually, KEY_LABEL, TEST_PIN } from "./fixture.ts";

async function post(child: ServedChild, path: string, body: unknown) {
  const response = await fetch(`${child.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, body: JSON.parse(text) };
}

function assertUnavailable(reply: Awaited<ReturnType<typeof post>>): void {
  assert.equal(reply.status, 503, reply.text);
  assert.equal(reply.body.error, "hsm_unavailable");
  assert.match(reply.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
  assert.ok(!reply.text.includes(TEST_PIN));
}

Deno.test("a token that cannot be read is 503 hsm_unavailable with Retry-After, never 404", async () => {
  await using child = await serveOnTempToken();
  const sealed = await post(child, "/encrypt", { key_label: KEY_LABEL, plaintext: btoa("kept") });
  assert.equal(sealed.status, 200, sealed.text);
  // SoftHSM keeps open sessions but can no longer read the token's storage.
  const moved = `${child.softhsm.tokenDir}.gone`;
  await Deno.rename(child.softhsm.tokenDir, moved);
  try {
    // Keys looked up in the last second may still be cached; wait until the token is asked.
    let encrypted = sealed;
    await eventually("encrypt reaches the token", async () => {
      encrypted = await post(child, "/encrypt", { key_label: KEY_LABEL, plaintext: "" });
      return encrypted.status !== 200;
    });
    assertUnavailable(encrypted);
    assertUnavailable(await post(child, "/decrypt", { key_label: KEY_LABEL, ...sealed.body }));
    assertUnavailable(
      await post(child, "/decrypt", { key_label: KEY_LABEL, ciphertext: sealed.body.ciphertext }),
    );
    const health = await fetch(`${child.url}/healthz`);
    assert.equal(health.status, 503);
    assert.equal((await health.json()).status, "unavailable");
  } finally {
    await Deno.rename(moved, child.softhsm.tokenDir); // so the fixture deletes it
  }
});

Deno.test("a key the token answers it does not have is 404", async () => {
  await using child = await serveOnTempToken();
  const encrypted = await post(child, "/encrypt", { key_label: "no-such-key", plaintext: "" });
  assert.equal(encrypted.status, 404, encrypted.text);
  assert.equal(encrypted.body.error, "unknown_key_label");
  const decrypted = await post(child, "/decrypt", {
    key_label: KEY_LABEL,
    key_id: "00".repeat(16),
    ciphertext: btoa("x".repeat(40)),
  });
  assert.equal(decrypted.status, 404, decrypted.text);
  assert.equal(decrypted.body.error, "key_not_found");
});
