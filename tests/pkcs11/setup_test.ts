/**
 * The setup helpers: the native addon is there, provisioning is idempotent,
 * private and cleans up, and a missing SoftHSM2 names its package.
 */
import assert from "node:assert/strict";
import { ensurePkcs11js, pkcs11jsAddon } from "../../tasks/setup/pkcs11js.ts";
import { provisionSoftHsm } from "../../tasks/setup/softhsm.ts";

Deno.test("the pkcs11js addon is built, and ensuring it again does nothing", async () => {
  assert.equal(await ensurePkcs11js(() => {}), false);
  assert.ok(Deno.statSync(pkcs11jsAddon).isFile);
});

Deno.test("provisioning twice keeps the token and reports it as existing", async () => {
  await using first = await provisionSoftHsm({ temporary: true });
  assert.equal(first.created, true);
  const dir = first.conf.replace(/\/softhsm2\.conf$/, "");
  await using second = await provisionSoftHsm({ dir, setEnv: false });
  assert.equal(second.created, false);
  assert.equal(second.tokenDir, first.tokenDir);
});

Deno.test("the private environment is project-local and never the system's token dir", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  assert.equal(Deno.env.get("SOFTHSM2_CONF"), env.conf);
  const conf = await Deno.readTextFile(env.conf);
  assert.match(conf, new RegExp(`directories.tokendir = ${env.tokenDir}`));
  assert.ok(env.tokenDir.includes("/.local/"));
  assert.ok(!JSON.stringify(env.env).includes(env.pin), "no PIN in the child-process env");
});

Deno.test("a temporary environment is deleted and SOFTHSM2_CONF restored on dispose", async () => {
  const before = Deno.env.get("SOFTHSM2_CONF");
  const env = await provisionSoftHsm({ temporary: true });
  await env[Symbol.asyncDispose]();
  assert.throws(() => Deno.statSync(env.conf));
  assert.equal(Deno.env.get("SOFTHSM2_CONF"), before);
});

Deno.test("without softhsm2-util the error names the Debian package softhsm2", async () => {
  const path = Deno.env.get("PATH")!;
  Deno.env.set("PATH", "/nonexistent");
  try {
    await assert.rejects(
      () => provisionSoftHsm({ temporary: true }),
      /install the Debian package softhsm2/,
    );
  } finally {
    Deno.env.set("PATH", path);
  }
});
