import assert from "node:assert/strict";
import { spawnService } from "./child_service.ts";

Deno.test("deno task serve starts on the private SoftHSM token out of the box", async () => {
  // No HSM settings at all: the task provisions .local/softhsm and uses its test PIN.
  const child = await spawnService({
    task: true,
    args: ["--port", "0"],
    unset: [
      "SOFTHSM2_CONF",
      "PKCS11_MODULE",
      "PKCS11_TOKEN_LABEL",
      "PKCS11_PIN",
      "DATABASE_URL",
      "PORT",
      "HOST",
    ],
  });
  try {
    const health = await fetch(`${child.url}/healthz`);
    assert.equal(health.status, 200, await health.text());
    const sealed = await fetch(`${child.url}/encrypt`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key_label: "default", plaintext: btoa("out of the box") }),
    });
    assert.equal(sealed.status, 200);
    const { key_id, ciphertext } = await sealed.json();
    const opened = await fetch(`${child.url}/decrypt`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key_label: "default", key_id, ciphertext }),
    });
    assert.equal(atob((await opened.json()).plaintext), "out of the box");
  } finally {
    child.killGroup("SIGINT"); // Ctrl-C in the terminal
  }
  const { code, stderr } = await child.exited();
  assert.equal(code, 0, stderr);
  assert.doesNotMatch(stderr, /second signal/);
  assert.match(stderr, /private test token "TestToken"/);
  assert.match(stderr, /"stopped"/);
});
