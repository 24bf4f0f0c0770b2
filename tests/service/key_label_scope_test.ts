import assert from "node:assert/strict";
import { openHsm } from "../../adapters/pkcs11/mod.ts";
import { encodeBase64 } from "../../service/request_body.ts";
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

Deno.test("decrypt with a key_id under key_label decrypts also when this service never used the key", async () => {
  await using t = await startTestService(["--ensure-key", OTHER_LABEL]);
  // Sealed by another process's handle on the same token, not through this service.
  await using other = await openHsm({
    library: t.softhsm.library,
    tokenLabel: t.softhsm.tokenLabel,
    pin: t.softhsm.pin,
    pool: { max: 1 },
  });
  const sealed = await other.encrypt(KEY_LABEL, new TextEncoder().encode("elsewhere"));
  const own = await t.post("/decrypt", {
    key_label: KEY_LABEL,
    key_id: sealed.keyId,
    ciphertext: encodeBase64(sealed.ciphertext),
  });
  assert.equal(own.status, 200, own.text);
  assert.equal(atob(own.body.plaintext), "elsewhere");
  const outside = await t.post("/decrypt", {
    key_label: OTHER_LABEL,
    key_id: sealed.keyId,
    ciphertext: encodeBase64(sealed.ciphertext),
  });
  assert.equal(outside.status, 404, outside.text);
  assert.equal(outside.body.error, "key_not_found");
});
