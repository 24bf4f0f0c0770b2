/**
 * Builds the native addon of `npm:pkcs11js` (Deno runs no npm build
 * scripts): run `deno run -A jsr:@poolkit/pool/pkcs11/install` once in your
 * project's folder. It builds pkcs11js where Deno put it, with node-gyp
 * against the local Node.js headers (needs `node`, `python3`, `make`, `g++`;
 * no network), and does nothing when the addon is already built.
 *
 * @module
 */

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir !== "" && isFile(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

/** The prefix (for node-gyp's `--nodedir`) whose `include/node` has Node's headers, if any. */
export function nodeHeadersPrefix(): string | undefined {
  const node = onPath("node");
  const prefix = node ? Deno.realPathSync(node).replace(/\/bin\/[^/]+$/, "") : undefined;
  const dirs = [prefix, "/usr", "/usr/local"].filter((d): d is string => d !== undefined);
  return dirs.find((dir) => isFile(`${dir}/include/node/node_api.h`));
}

/** node-gyp's script: inside the npm on PATH, or Debian's own package `node-gyp`. */
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

/**
 * Where Deno put pkcs11js for the program running this, or `undefined`
 * when its addon is built already: read off the failed load's require
 * stack, the one place that names it whatever the project's
 * `nodeModulesDir` setting is.
 */
export async function unbuiltPkcs11jsDir(): Promise<string | undefined> {
  try {
    await import("pkcs11js");
    return undefined;
  } catch (error) {
    const message = String((error as Error)?.message);
    const dir = /- (\/\S+\/pkcs11js)\/index\.js/.exec(message)?.[1];
    if (dir === undefined) throw error;
    return dir;
  }
}

/**
 * Builds pkcs11js's addon in `dir` (the package's folder) with node-gyp;
 * each line node-gyp prints goes to `log`. Throws with its last lines when
 * it fails, or naming what to install when a tool is missing.
 */
export async function buildPkcs11js(
  dir: string,
  log: (line: string) => void = (line) => console.error(line),
): Promise<void> {
  const gyp = nodeGypScript();
  if (gyp === undefined || onPath("node") === undefined) {
    throw new Error(
      "building pkcs11js needs node and node-gyp (with python3, make and g++): " +
        "apt-get install nodejs npm python3 make g++",
    );
  }
  // With the local headers node-gyp never downloads them (no network needed).
  const headers = nodeHeadersPrefix();
  const args = [gyp, "rebuild", ...(headers ? [`--nodedir=${headers}`] : [])];
  log(`pkcs11js: building its native addon in ${dir} (node-gyp, about a minute)`);
  const child = new Deno.Command("node", { args, cwd: dir, stdout: "piped", stderr: "piped" })
    .spawn();
  const output: string[] = [];
  let compiled = 0;
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      for (const line of chunk.split("\n")) {
        if (line === "") continue;
        output.push(line);
        const cxx = /CXX\(target\) .*\/(src\/[^/]+)\.o$/.exec(line);
        if (cxx) log(`pkcs11js:   [${++compiled}] compiling ${cxx[1]}.cpp`);
        else if (/SOLINK_MODULE/.test(line)) log("pkcs11js:   linking pkcs11.node");
      }
    }
  };
  const [status] = await Promise.all([child.status, collect(child.stdout), collect(child.stderr)]);
  if (!status.success || !isFile(`${dir}/build/Release/pkcs11.node`)) {
    throw new Error(
      `building pkcs11js failed (exit ${status.code}): node ${args.join(" ")}\n` +
        output.slice(-25).join("\n"),
    );
  }
  log("pkcs11js: built");
}

if (import.meta.main) {
  try {
    const dir = await unbuiltPkcs11jsDir();
    if (dir === undefined) console.error("pkcs11js: its native addon is already built");
    else await buildPkcs11js(dir);
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    Deno.exit(1);
  }
}
