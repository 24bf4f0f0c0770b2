import assert from "node:assert/strict";
import { KEY_LABEL, randomBytes, startTestService } from "./fixture.ts";

const SIZES = [0, 1, 15, 16, 17, 255, 1024, 4096, 16 * 1024 + 3, 65535, 65536];

Deno.test("encrypt then decrypt gives back random payloads from 0 B to 64 KiB", async () => {
  await using t = await startTestService();
  for (const size of SIZES) {
    const plaintext = randomBytes(size);
    const sealed = await t.post("/encrypt", {
      key_label: KEY_LABEL,
      plaintext: plaintext.toBase64(),
    });
    assert.equal(sealed.status, 200, `${size} B: ${sealed.text}`);
    assert.match(sealed.body.key_id, /^[0-9a-f]+$/);
    assert.equal(
      Uint8Array.fromBase64(sealed.body.ciphertext).length,
      size + 28,
      "IV + data + tag",
    );
    const opened = await t.post("/decrypt", {
      key_label: KEY_LABEL,
      key_id: sealed.body.key_id,
      ciphertext: sealed.body.ciphertext,
    });
    assert.equal(opened.status, 200, `${size} B: ${opened.text}`);
    assert.deepEqual(Uint8Array.fromBase64(opened.body.plaintext), plaintext, `${size} B`);
    assert.equal(opened.body.key_id, sealed.body.key_id);
  }
});

Deno.test("encrypting the same plaintext twice gives different ciphertexts", async () => {
  await using t = await startTestService();
  const body = { key_label: KEY_LABEL, plaintext: btoa("same") };
  const a = await t.post("/encrypt", body);
  const b = await t.post("/encrypt", body);
  assert.notEqual(a.body.ciphertext, b.body.ciphertext);
});

Deno.test("decrypt without key_id finds the key among those with the label", async () => {
  await using t = await startTestService();
  await t.service.hsm.use((s) => s.generateAesKey({ label: KEY_LABEL })); // a rotated-in key
  for (let i = 0; i < 8; i++) {
    const sealed = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: btoa(`m${i}`) });
    const opened = await t.post("/decrypt", {
      key_label: KEY_LABEL,
      ciphertext: sealed.body.ciphertext,
    });
    assert.equal(opened.status, 200, opened.text);
    assert.equal(atob(opened.body.plaintext), `m${i}`);
    assert.equal(opened.body.key_id, sealed.body.key_id);
  }
});

Deno.test("encryption spreads over every key with the label, so keys can rotate", async () => {
  await using t = await startTestService();
  await t.service.hsm.use((s) => s.generateAesKey({ label: KEY_LABEL }));
  const seen = new Set<string>();
  // Two keys picked at random: 64 draws all landing on one key has odds 2^-63.
  for (let i = 0; i < 64 && seen.size < 2; i++) {
    seen.add((await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" })).body.key_id);
  }
  assert.equal(seen.size, 2);
});
