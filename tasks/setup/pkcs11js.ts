/**
 * Makes sure the native addon of `npm:pkcs11js` is built for this project,
 * with the builder the package ships (`adapters/pkcs11/install.ts`, what a
 * user runs as `deno run -A jsr:@poolkit/pool/pkcs11/install`). Idempotent:
 * when the addon is there it returns at once. Part of `deno task setup`;
 * also `deno run -A tasks/setup/pkcs11js.ts`.
 *
 * @module
 */

import { buildPkcs11js } from "../../adapters/pkcs11/install.ts";
import { exists } from "./files.ts";

export { nodeGypScript, nodeHeadersPrefix } from "../../adapters/pkcs11/install.ts";

/** The pkcs11js version pinned in deno.json's import map. */
export const PKCS11JS_VERSION = "2.1.7";

const projectRoot = new URL("../../", import.meta.url).pathname;

/** Where Deno puts the package in this project's `node_modules`. */
export const pkcs11jsDir =
  `${projectRoot}node_modules/.deno/pkcs11js@${PKCS11JS_VERSION}/node_modules/pkcs11js`;

/** The compiled addon that `pkcs11js/index.js` requires. */
export const pkcs11jsAddon = `${pkcs11jsDir}/build/Release/pkcs11.node`;

/**
 * Builds pkcs11js's native addon if it is missing; returns `true` when it
 * built something. Progress goes to `log` (stderr by default).
 */
export async function ensurePkcs11js(
  log: (line: string) => void = (line) => console.error(line),
): Promise<boolean> {
  if (exists(pkcs11jsAddon)) return false;
  if (!exists(pkcs11jsDir)) {
    log("setup: installing the npm packages deno.json pins (deno install)");
    const out = await new Deno.Command(Deno.execPath(), { args: ["install"], cwd: projectRoot })
      .output();
    if (!out.success || !exists(pkcs11jsDir)) {
      throw new Error(
        `deno install did not create ${pkcs11jsDir}; is "pkcs11js" still pinned to ` +
          `npm:pkcs11js@${PKCS11JS_VERSION} in deno.json?\n${new TextDecoder().decode(out.stderr)}`,
      );
    }
  }
  const started = performance.now();
  await buildPkcs11js(pkcs11jsDir, (line) => log(`setup: ${line}`));
  log(`setup: pkcs11js built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

if (import.meta.main) {
  const built = await ensurePkcs11js();
  if (!built) console.error("setup: pkcs11js native addon already built");
}
