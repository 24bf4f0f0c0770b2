/**
 * Provisions a private SoftHSM2 environment for tests, demos, the HTTP
 * service and benchmarks: its own `softhsm2.conf` and token directory in a
 * project-local ignored folder (`.local/`), with one token labelled
 * `TestToken` (or `PKCS11_TOKEN_LABEL`). The system's tokens
 * (`/var/lib/softhsm/tokens`) are never read or touched.
 *
 * PINs come from `PKCS11_PIN` and `PKCS11_SO_PIN`. Their defaults, `1234`
 * and `5678`, are for this throwaway test token only; never use them for a
 * token that guards anything.
 *
 * ```ts
 * await using hsm = await provisionSoftHsm({ temporary: true }); // tests
 * // hsm.library, hsm.tokenLabel, hsm.pin; SOFTHSM2_CONF is set for this process
 * ```
 *
 * @module
 */
import { exists } from "./files.ts";
import { findPkcs11Module } from "../../adapters/pkcs11/library.ts";

/** Test-only default user PIN, used when `PKCS11_PIN` is not set. */
export const DEFAULT_TEST_PIN = "1234";
/** Test-only default security-officer PIN, used when `PKCS11_SO_PIN` is not set. */
export const DEFAULT_TEST_SO_PIN = "5678";
/** The token label the project's tests and demos use. */
export const DEFAULT_TOKEN_LABEL = "TestToken";

const projectRoot = new URL("../../", import.meta.url).pathname;
/** The persistent environment used by demos, the service and benchmarks. */
export const DEFAULT_SOFTHSM_DIR = `${projectRoot}.local/softhsm`;

/** Options of {@link provisionSoftHsm}. */
export interface SoftHsmOptions {
  /** Folder for the conf file and tokens. Default `.local/softhsm` (or a fresh temp folder). */
  dir?: string;
  /** A fresh folder under `.local/tmp/`, deleted on dispose. Default false. */
  temporary?: boolean;
  /** Token label. Default `PKCS11_TOKEN_LABEL` or `TestToken`. */
  tokenLabel?: string;
  /** User PIN. Default `PKCS11_PIN` or the test-only `1234`. */
  pin?: string;
  /** Security-officer PIN. Default `PKCS11_SO_PIN` or the test-only `5678`. */
  soPin?: string;
  /** Set `SOFTHSM2_CONF` in this process (restored on dispose). Default true. */
  setEnv?: boolean;
}

/** A provisioned private SoftHSM2 environment. Dispose it to clean up what it created. */
export interface SoftHsm extends AsyncDisposable {
  /** Path of the SoftHSM2 PKCS#11 module. */
  library: string;
  /** Path of the private `softhsm2.conf`. */
  conf: string;
  /** The private token directory. */
  tokenDir: string;
  /** Label of the initialised token. */
  tokenLabel: string;
  /** The user PIN (test-only). */
  pin: string;
  /** The security-officer PIN (test-only). */
  soPin: string;
  /** Variables a child process needs to use this token (no PINs in it). */
  env: Record<string, string>;
  /** Whether this call initialised the token (false: it already existed). */
  created: boolean;
}

async function softhsmUtil(conf: string, args: string[]): Promise<string> {
  let out;
  try {
    out = await new Deno.Command("softhsm2-util", {
      args,
      env: { SOFTHSM2_CONF: conf },
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(
        "softhsm2-util is not installed: install the Debian package softhsm2 " +
          "(apt-get install softhsm2)",
      );
    }
    throw error;
  }
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    // The arguments carry the PINs: never echo them, only the verb.
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`softhsm2-util ${args[0]} failed (exit ${out.code}): ${err || text.trim()}`);
  }
  return text;
}

function hasToken(slotsOutput: string, label: string): boolean {
  return slotsOutput.split("\n").some((line) => {
    const m = /^\s*Label:\s*(.*)$/.exec(line);
    return m !== null && m[1].trim() === label;
  });
}

async function initToken(
  tokenDir: string,
  conf: string,
  tokenLabel: string,
  pin: string,
  soPin: string,
): Promise<boolean> {
  await Deno.mkdir(tokenDir, { recursive: true });
  await Deno.writeTextFile(
    conf,
    [
      "# Private SoftHSM2 configuration written by tasks/setup/softhsm.ts",
      `directories.tokendir = ${tokenDir}`,
      "objectstore.backend = file",
      "log.level = ERROR",
      "slots.removable = false",
      "",
    ].join("\n"),
  );

  if (!hasToken(await softhsmUtil(conf, ["--show-slots"]), tokenLabel)) {
    await softhsmUtil(conf, [
      "--init-token",
      "--free",
      "--label",
      tokenLabel,
      "--pin",
      pin,
      "--so-pin",
      soPin,
    ]);
    return true;
  }

  return false;
}

/**
 * Initialises one more token labelled `label` in the environment `hsm` (its user PIN `pin`, by
 * default the environment's); modules initialised before see it after their next
 * `C_Initialize`. Its slot id is SoftHSM's to choose: find it by label.
 */
export async function addSoftHsmToken(hsm: SoftHsm, label: string, pin = hsm.pin): Promise<void> {
  if (label.length === 0 || label.length > 32) {
    throw new RangeError(`token label must be 1 to 32 characters, got "${label}"`);
  }
  if (pin.length < 4) throw new RangeError("a SoftHSM2 PIN must be at least 4 characters");
  if (hasToken(await softhsmUtil(hsm.conf, ["--show-slots"]), label)) {
    throw new Error(`a token labelled "${label}" is already in ${hsm.tokenDir}`);
  }
  await softhsmUtil(hsm.conf, [
    "--init-token",
    "--free",
    "--label",
    label,
    "--pin",
    pin,
    "--so-pin",
    hsm.soPin,
  ]);
}

/**
 * Creates (or reuses) a private SoftHSM2 environment with an initialised
 * token. Idempotent: an existing token with the label is kept as it is.
 * Throws naming the Debian package `softhsm2` when SoftHSM2 is missing.
 */
export async function provisionSoftHsm(options: SoftHsmOptions = {}): Promise<SoftHsm> {
  const library = findPkcs11Module();
  const tokenLabel = options.tokenLabel ?? Deno.env.get("PKCS11_TOKEN_LABEL") ??
    DEFAULT_TOKEN_LABEL;
  const pin = options.pin ?? Deno.env.get("PKCS11_PIN") ?? DEFAULT_TEST_PIN;
  const soPin = options.soPin ?? Deno.env.get("PKCS11_SO_PIN") ?? DEFAULT_TEST_SO_PIN;
  if (tokenLabel.length === 0 || tokenLabel.length > 32) {
    throw new RangeError(`token label must be 1 to 32 characters, got "${tokenLabel}"`);
  }
  if (pin.length < 4 || soPin.length < 4) {
    throw new RangeError("PKCS11_PIN and PKCS11_SO_PIN must be at least 4 characters (SoftHSM2)");
  }

  let dir = options.dir ?? DEFAULT_SOFTHSM_DIR;
  if (options.temporary) {
    await Deno.mkdir(`${projectRoot}.local/tmp`, { recursive: true });
    dir = await Deno.makeTempDir({ dir: `${projectRoot}.local/tmp`, prefix: "softhsm-" });
  }
  const tokenDir = `${dir}/tokens`;
  const conf = `${dir}/softhsm2.conf`;
  let created = false;
  try {
    created = await initToken(tokenDir, conf, tokenLabel, pin, soPin);
  } catch (error) {
    if (options.temporary) await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }

  const previousConf = Deno.env.get("SOFTHSM2_CONF");
  const setEnv = options.setEnv ?? true;
  if (setEnv) Deno.env.set("SOFTHSM2_CONF", conf);

  let disposed = false;
  return {
    library,
    conf,
    tokenDir,
    tokenLabel,
    pin,
    soPin,
    created,
    env: { SOFTHSM2_CONF: conf, PKCS11_MODULE: library, PKCS11_TOKEN_LABEL: tokenLabel },
    async [Symbol.asyncDispose]() {
      if (disposed) return;
      disposed = true;
      if (setEnv) {
        if (previousConf === undefined) Deno.env.delete("SOFTHSM2_CONF");
        else Deno.env.set("SOFTHSM2_CONF", previousConf);
      }
      if (options.temporary) await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

if (import.meta.main) {
  const hsm = await provisionSoftHsm();
  console.error(
    `setup: SoftHSM2 token "${hsm.tokenLabel}" ${hsm.created ? "created" : "ready"} in ` +
      `${hsm.tokenDir}\n       use it with SOFTHSM2_CONF=${hsm.conf}`,
  );
  if (!exists(hsm.library)) Deno.exit(1);
}
