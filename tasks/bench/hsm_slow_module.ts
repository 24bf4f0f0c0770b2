/**
 * {@link openSlowModule}: a stand-in for a network HSM in benchmarks and
 * tests. Builds `native/slow_pkcs11.c` with gcc into `.local/bench/` (once;
 * again when the source changes), a PKCS#11 module that forwards every call
 * to a real module, and whose crypto calls wait, hang or fail as its
 * settings say, changed at run time through a control file.
 *
 * ```ts
 * using slow = await openSlowModule(softhsm.library, { delayUs: 500 });
 * await using hsm = await openHsm({ library: slow.library, ... });
 * slow.set({ hang: true }); // calls now hang until set({ hang: false })
 * ```
 *
 * @module
 */

const root = new URL("../../", import.meta.url);
const dir = new URL(".local/bench/", root).pathname;
const source = new URL("tasks/bench/native/slow_pkcs11.c", root).pathname;
const built = `${dir}slow_pkcs11.so`;

/** What the slow module's crypto calls do (see `native/slow_pkcs11.c`). */
export interface SlowSettings {
  /** Wait this long before each crypto call, as a round trip would. Default 0. */
  delayUs?: number;
  /** Hang every crypto call until this is `false` again. */
  hang?: boolean;
  /** Return this CK_RV from every crypto call instead of calling on. */
  fail?: number;
}

/** The slow module of this process and its settings. Dispose it to reset them. */
export interface SlowModule extends Disposable {
  /** Path of the module: pass it as `library`. */
  readonly library: string;
  /** Changes what its crypto calls do from the next call on. */
  set(settings: SlowSettings): void;
}

function mtime(path: string): number {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch {
    return -1;
  }
}

/** Builds the module unless it is there and newer than its source; returns its path. */
async function buildSlowModule(): Promise<string> {
  if (mtime(built) >= mtime(source)) return built;
  await Deno.mkdir(dir, { recursive: true });
  const headers = new URL("node_modules/pkcs11js/includes/pkcs11", root).pathname;
  let gcc: Deno.CommandOutput;
  try {
    gcc = await new Deno.Command("gcc", {
      args: ["-O2", "-shared", "-fPIC", "-I", headers, "-o", built, source],
      stdout: "null",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error("building the slow PKCS#11 module needs gcc: apt-get install gcc");
  }
  if (!gcc.success) throw new Error(`gcc failed: ${new TextDecoder().decode(gcc.stderr)}`);
  return built;
}

/** The control file of this process (the module reads its path once, when first loaded). */
const control = `${dir}slow_pkcs11-${Deno.pid}.control`;

/**
 * Builds the module, points it at `inner` (the real module's path) and
 * applies `settings`. The module learns `inner` when first loaded, so one
 * real module per process; the settings change at any time.
 */
export async function openSlowModule(
  inner: string,
  settings: SlowSettings = {},
): Promise<SlowModule> {
  const library = await buildSlowModule();
  const first = Deno.env.get("SLOW_PKCS11_MODULE");
  if (first !== undefined && first !== inner) {
    throw new Error(`this process's slow module already forwards to ${first}, not ${inner}`);
  }
  Deno.env.set("SLOW_PKCS11_MODULE", inner);
  Deno.env.set("SLOW_PKCS11_DELAY_US", "0");
  Deno.env.set("SLOW_PKCS11_CONTROL", control);
  const set = (s: SlowSettings) => {
    Deno.writeTextFileSync(
      `${control}.new`,
      `delay_us ${Math.round(s.delayUs ?? 0)}\nhang ${s.hang ? 1 : 0}\nfail ${s.fail ?? 0}\n`,
    );
    Deno.renameSync(`${control}.new`, control); // the module never reads half a file
  };
  set(settings);
  return {
    library,
    set,
    [Symbol.dispose]() {
      Deno.removeSync(control);
    },
  };
}
