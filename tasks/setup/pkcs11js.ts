/**
 * Makes sure the native addon of `npm:pkcs11js` is built.
 *
 * Deno installs npm packages without running their build scripts, so the
 * addon's `build/Release/pkcs11.node` is missing after `deno install`. This
 * helper builds it with node-gyp (the one inside npm, or Debian's package),
 * against the Node headers of the machine (`/usr/include/node` on Debian),
 * printing each file it compiles. It is idempotent: when the addon is already
 * there it returns in well under a millisecond.
 *
 * Run it as `deno run -A tasks/setup/pkcs11js.ts`, or call
 * {@link ensurePkcs11js} (it is part of `deno task setup`).
 *
 * @module
 */

import { exists, isFile, onPath } from "./files.ts";

/** The pkcs11js version pinned in deno.json's import map. */
export const PKCS11JS_VERSION = "2.1.7";

const projectRoot = new URL("../../", import.meta.url).pathname;

/** Where Deno puts the package in this project's `node_modules`. */
export const pkcs11jsDir =
  `${projectRoot}node_modules/.deno/pkcs11js@${PKCS11JS_VERSION}/node_modules/pkcs11js`;

/** The compiled addon that `pkcs11js/index.js` requires. */
export const pkcs11jsAddon = `${pkcs11jsDir}/build/Release/pkcs11.node`;

/** Runs `cmd`; each line it prints goes to `onLine`; throws with its last lines if it fails. */
async function run(
  cmd: string,
  args: string[],
  cwd: string,
  what: string,
  onLine: (line: string) => void = () => {},
): Promise<void> {
  let child;
  try {
    child = new Deno.Command(cmd, { args, cwd, stdin: "null", stdout: "piped", stderr: "piped" })
      .spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        `${what}: "${cmd}" is not installed. Run \`deno task setup\`, which installs what is ` +
          `missing (Debian: apt-get install nodejs npm python3 g++ make).`,
      );
    }
    throw error;
  }
  const output: string[] = [];
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        output.push(line);
        onLine(line);
      }
    }
    if (rest) output.push(rest);
  };
  const [status] = await Promise.all([child.status, collect(child.stdout), collect(child.stderr)]);
  if (!status.success) {
    const log = output.slice(-25).join("\n");
    throw new Error(`${what} failed (exit ${status.code}): ${cmd} ${args.join(" ")}\n${log}`);
  }
}

/** Where Node.js keeps its headers: next to the `node` on PATH, or the usual prefixes. */
export function nodeHeaderDirs(): string[] {
  const node = onPath("node");
  const prefix = node ? Deno.realPathSync(node).replace(/\/bin\/[^/]+$/, "") : undefined;
  return [...new Set([prefix, "/usr", "/usr/local"].filter((d): d is string => !!d))];
}

/** The prefix (for node-gyp's `--nodedir`) whose `include/node` has Node's headers, if any. */
export function nodeHeadersPrefix(): string | undefined {
  return nodeHeaderDirs().find((dir) => isFile(`${dir}/include/node/node_api.h`));
}

/**
 * Where node-gyp's script is: inside the npm on PATH (npm from nodejs.org, NodeSource, nvm), or
 * Debian's own package `node-gyp` (which Debian's npm depends on).
 */
export function nodeGypScript(): string | undefined {
  const candidates: string[] = [];
  const npm = onPath("npm");
  if (npm) {
    const npmDir = Deno.realPathSync(npm).replace(/\/bin\/[^/]+$/, "");
    candidates.push(`${npmDir}/node_modules/node-gyp/bin/node-gyp.js`);
  }
  const gyp = onPath("node-gyp");
  if (gyp) candidates.push(Deno.realPathSync(gyp));
  candidates.push("/usr/share/nodejs/node-gyp/bin/node-gyp.js");
  return candidates.find(isFile);
}

/** "setup:   [2/3] compiling src/common.cpp" from node-gyp's `CXX(target) .../src/common.o`. */
function compileProgress(sources: number, log: (line: string) => void): (line: string) => void {
  let compiled = 0;
  return (line) => {
    const cxx = /CXX\(target\) .*\/(src\/[^/]+)\.o$/.exec(line);
    if (cxx) log(`setup:   [${++compiled}/${sources}] compiling ${cxx[1]}.cpp`);
    else if (/SOLINK_MODULE/.test(line)) log("setup:   linking pkcs11.node");
  };
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
    log("setup: installing the npm packages deno.json pins (deno install)");
    await run(Deno.execPath(), ["install"], projectRoot, "deno install");
    if (!exists(pkcs11jsDir)) {
      throw new Error(
        `deno install did not create ${pkcs11jsDir}; is "pkcs11js" still pinned to ` +
          `npm:pkcs11js@${PKCS11JS_VERSION} in deno.json?`,
      );
    }
  }
  const gyp = nodeGypScript();
  if (!gyp) {
    throw new Error("node-gyp not found (neither in npm nor on PATH): run `deno task setup`");
  }
  // With the local headers node-gyp never downloads them (no network needed).
  const headers = nodeHeadersPrefix();
  const args = [gyp, "rebuild", ...(headers ? [`--nodedir=${headers}`] : [])];
  const gypFile = await Deno.readTextFile(`${pkcs11jsDir}/binding.gyp`).catch(() => "");
  const sources = gypFile.match(/"src\/[^"]+\.cc?p?p?"/g)?.length ?? 0;
  log(`setup: building the pkcs11js native addon with node-gyp (${sources} C++ files)`);
  const started = performance.now();
  await run("node", args, pkcs11jsDir, "building pkcs11js", compileProgress(sources, log));
  if (!exists(pkcs11jsAddon)) throw new Error(`node-gyp finished but ${pkcs11jsAddon} is missing`);
  log(`setup: pkcs11js built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

if (import.meta.main) {
  const built = await ensurePkcs11js();
  if (!built) console.error("setup: pkcs11js native addon already built");
}
