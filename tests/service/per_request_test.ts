import assert from "node:assert/strict";
import { KEY_LABEL, startTestService } from "./fixture.ts";

Deno.test("/encrypt-per-request, when turned on, makes ciphertexts that /decrypt opens", async () => {
  await using t = await startTestService(["--per-request"]);
  const before = await t.poolStats();
  const sealed = await t.post("/encrypt-per-request", {
    key_label: KEY_LABEL,
    plaintext: btoa("old way"),
  });
  assert.equal(sealed.status, 200, sealed.text);
  assert.equal((await t.poolStats()).acquired, before.acquired, "the pool was not used");
  const opened = await t.post("/decrypt", { key_label: KEY_LABEL, ...sealed.body });
  assert.equal(atob(opened.body.plaintext), "old way");
});

Deno.test("/encrypt-per-request answers 404 for an unknown key label", async () => {
  await using t = await startTestService(["--per-request"]);
  const reply = await t.post("/encrypt-per-request", { key_label: "nope", plaintext: "" });
  assert.equal(reply.status, 404);
  assert.equal(reply.body.error, "unknown_key_label");
});

Deno.test("ENABLE_PER_REQUEST=1 turns /encrypt-per-request on", async () => {
  await using t = await startTestService([], { ENABLE_PER_REQUEST: "1" });
  const reply = await t.post("/encrypt-per-request", { key_label: KEY_LABEL, plaintext: "" });
  assert.equal(reply.status, 200, reply.text);
});
