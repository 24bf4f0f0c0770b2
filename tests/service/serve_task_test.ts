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
    child.kill("SIGINT");
  }
  const { code, stderr } = await child.exited();
  // The signal goes to the `deno task` runner, which forwards it; depending on
  // timing the runner itself reports 130 (interrupted) even though the
  // service stopped cleanly. The service's own clean exit is pinned by the
  // shutdown tests, which signal the service process directly.
  assert.ok(code === 0 || code === 130, `exit code ${code}\n${stderr}`);
  assert.doesNotMatch(stderr, /second signal/);
  assert.match(stderr, /private test token "TestToken"/);
  assert.match(stderr, /"stopped"/);
});
