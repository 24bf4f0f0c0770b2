import assert from "node:assert/strict";
import { KEY_LABEL, startTestService, type TestService } from "./fixture.ts";

const OTHER_LABEL = "other-tenant";

/** A service with two labels, and a ciphertext sealed under each. */
async function twoLabels(t: TestService) {
  const own = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: btoa("own") });
  const other = await t.post("/encrypt", { key_label: OTHER_LABEL, plaintext: btoa("other") });
  assert.equal(own.status, 200, own.text);
  assert.equal(other.status, 200, other.text);
  assert.notEqual(own.body.key_id, other.body.key_id);
  return { own: own.body, other: other.body };
}

Deno.test("decrypt with a key_id under key_label decrypts", async () => {
  await using t = await startTestService(["--ensure-key", OTHER_LABEL]);
  const { own } = await twoLabels(t);
  const reply = await t.post("/decrypt", { key_label: KEY_LABEL, ...own });
  assert.equal(reply.status, 200, reply.text);
  assert.equal(atob(reply.body.plaintext), "own");
  assert.equal(reply.body.key_id, own.key_id);
});

Deno.test("decrypt with a key_id outside key_label is 404 key_not_found, as an unknown id is", async () => {
  await using t = await startTestService(["--ensure-key", OTHER_LABEL]);
  const { other } = await twoLabels(t);
  const outside = await t.post("/decrypt", { key_label: KEY_LABEL, ...other });
  const unknown = await t.post("/decrypt", {
    key_label: KEY_LABEL,
    ciphertext: other.ciphertext,
    key_id: "00".repeat(16),
  });
  for (const reply of [outside, unknown]) {
    assert.equal(reply.status, 404, reply.text);
    assert.equal(reply.body.error, "key_not_found");
    assert.ok(!reply.text.includes("other"), reply.text);
  }
  assert.equal(
    outside.body.message.replace(other.key_id, "ID"),
    unknown.body.message.replace("00".repeat(16), "ID"),
  );
});

Deno.test("decrypt without key_id never tries a key outside key_label", async () => {
  await using t = await startTestService(["--ensure-key", OTHER_LABEL]);
  const { other } = await twoLabels(t);
  const reply = await t.post("/decrypt", { key_label: KEY_LABEL, ciphertext: other.ciphertext });
  assert.equal(reply.status, 400, reply.text);
  assert.equal(reply.body.error, "decryption_failed");
});
