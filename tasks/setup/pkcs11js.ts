/**
 * Makes sure the native addon of `npm:pkcs11js` is built.
 *
 * Deno installs npm packages without running their build scripts, so the
 * addon's `build/Release/pkcs11.node` is missing after `deno install`. This
 * helper builds it with the node-gyp that ships inside npm, against the Node
 * headers of the machine (`/usr/include/node` on Debian). It is idempotent:
 * when the addon is already there it returns in well under a millisecond.
 *
 * Run it as `deno run -A tasks/setup/pkcs11js.ts`, or call
 * {@link ensurePkcs11js} (it is part of `deno task setup:hsm`).
 *
 * @module
 */

import { exists } from "./files.ts";

/** The pkcs11js version pinned in deno.json's import map. */
export const PKCS11JS_VERSION = "2.1.7";

const projectRoot = new URL("../../", import.meta.url).pathname;

/** Where Deno puts the package in this project's `node_modules`. */
export const pkcs11jsDir =
  `${projectRoot}node_modules/.deno/pkcs11js@${PKCS11JS_VERSION}/node_modules/pkcs11js`;

/** The compiled addon that `pkcs11js/index.js` requires. */
export const pkcs11jsAddon = `${pkcs11jsDir}/build/Release/pkcs11.node`;

async function run(cmd: string, args: string[], cwd: string, what: string): Promise<void> {
  let child;
  try {
    child = new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `${what}: "${cmd}" is not installed. Install Node.js with npm, python3 and a C++ ` +
          `compiler (Debian: apt-get install nodejs npm python3 g++).`,
      );
    }
    throw error;
  }
  const out = await child.output();
  if (!out.success) {
    const log = new TextDecoder().decode(out.stderr).split("\n").slice(-25).join("\n");
    throw new Error(`${what} failed (exit ${out.code}): ${cmd} ${args.join(" ")}\n${log}`);
  }
}

async function npmRoot(): Promise<string> {
  const out = await new Deno.Command("npm", { args: ["root", "-g"], stderr: "null" }).output()
    .catch(() => null);
  if (!out?.success) {
    throw new Error(
      "building pkcs11js needs npm (it ships node-gyp). Install it: apt-get install npm",
    );
  }
  return new TextDecoder().decode(out.stdout).trim();
}

/** Where Node's headers are, so node-gyp never downloads them (no network). */
function nodeHeadersDir(): string | undefined {
  for (const dir of ["/usr", "/usr/local"]) {
    if (exists(`${dir}/include/node/node_api.h`)) return dir;
  }
  return undefined;
}

/**
 * Builds pkcs11js's native addon if it is missing; returns `true` when it
 * built something. Progress goes to `log` (stderr by default).
 */
export async function ensurePkcs11js(
  log: (line: string) => void = (line) => console.error(line),
): Promise<boolean> {
  if (exists(pkcs11jsAddon)) return false;
  if (!exists(pkcs11jsDir)) {
    log("setup: installing npm packages (deno install)");
    await run(Deno.execPath(), ["install"], projectRoot, "deno install");
    if (!exists(pkcs11jsDir)) {
      throw new Error(
        `deno install did not create ${pkcs11jsDir}; is "pkcs11js" still pinned to ` +
          `npm:pkcs11js@${PKCS11JS_VERSION} in deno.json?`,
      );
    }
  }
  const gyp = `${await npmRoot()}/npm/node_modules/node-gyp/bin/node-gyp.js`;
  if (!exists(gyp)) throw new Error(`node-gyp not found at ${gyp}; reinstall npm`);
  const headers = nodeHeadersDir();
  const args = [gyp, "rebuild", ...(headers ? [`--nodedir=${headers}`] : [])];
  log(`setup: building the pkcs11js native addon with node-gyp (a few seconds)`);
  const started = performance.now();
  await run("node", args, pkcs11jsDir, "building pkcs11js");
  if (!exists(pkcs11jsAddon)) throw new Error(`node-gyp finished but ${pkcs11jsAddon} is missing`);
  log(`setup: pkcs11js built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

if (import.meta.main) {
  const built = await ensurePkcs11js();
  if (!built) console.error("setup: pkcs11js native addon already built");
}
