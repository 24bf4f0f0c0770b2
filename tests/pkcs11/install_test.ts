/**
 * Installing from JSR: a project outside this repository that links exactly
 * the files `deno publish` would upload, runs the documented build step once
 * and then encrypts on a SoftHSM token. Before the step, the missing addon's
 * error names the command to run.
 */
import assert from "node:assert/strict";
import { provisionSoftHsm } from "../../tasks/setup/softhsm.ts";

const root = new URL("../../", import.meta.url).pathname;
const INSTALL = "deno run -A jsr:@poolkit/pool/pkcs11/install";

async function deno(args: string[], cwd: string, env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { ...env, NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { ok: out.success, text };
}

/** The files `deno publish` would upload, read off its dry run. */
async function publishedFiles(): Promise<string[]> {
  const { ok, text } = await deno(["publish", "--dry-run", "--allow-dirty"], root);
  assert.ok(ok, text);
  const files = [...text.matchAll(/^\s+file:\/\/(\S+) \(/gm)].map((m) => m[1]);
  assert.ok(files.includes(`${root}adapters/pkcs11/install.ts`), "the build step is published");
  return files;
}

const CONSUMER = `import { openHsm } from "jsr:@poolkit/pool/pkcs11";

await using hsm = await openHsm({
  tokenLabel: Deno.env.get("PKCS11_TOKEN_LABEL")!,
  pin: Deno.env.get("PKCS11_PIN")!,
});
await hsm.use((s) => s.generateAesKey({ label: "app" }));
const { ciphertext, keyId } = await hsm.encrypt("app", new TextEncoder().encode("consumed"));
console.log(new TextDecoder().decode(await hsm.decrypt(keyId, ciphertext)));
`;

Deno.test("a project that links the published files builds the addon with the documented step and encrypts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "poolkit-consumer-" });
  await using env = await provisionSoftHsm({ temporary: true });
  try {
    for (const file of await publishedFiles()) {
      const target = `${dir}/package/${file.slice(root.length)}`;
      await Deno.mkdir(target.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.copyFile(file, target);
    }
    const app = `${dir}/app`;
    await Deno.mkdir(app);
    await Deno.writeTextFile(
      `${app}/deno.json`,
      JSON.stringify({ links: ["../package"], nodeModulesDir: "auto" }),
    );
    await Deno.writeTextFile(`${app}/main.ts`, CONSUMER);
    // How a program finds the token: SOFTHSM2_CONF, as docs/pkcs11.md says.
    const tokenEnv = {
      SOFTHSM2_CONF: env.conf,
      PKCS11_TOKEN_LABEL: env.tokenLabel,
      PKCS11_PIN: env.pin,
    };
    const before = await deno(["run", "-A", "main.ts"], app, tokenEnv);
    assert.ok(!before.ok);
    assert.ok(before.text.includes(`run \`${INSTALL}\` once`), before.text);
    const step = await deno(INSTALL.split(" ").slice(1), app);
    assert.ok(step.ok, step.text);
    assert.match(step.text, /pkcs11js: built/);
    const after = await deno(["run", "-A", "main.ts"], app, tokenEnv);
    assert.ok(after.ok, after.text);
    assert.match(after.text, /^consumed$/m);
    const again = await deno(INSTALL.split(" ").slice(1), app);
    assert.match(again.text, /already built/, "running the step again does nothing");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
