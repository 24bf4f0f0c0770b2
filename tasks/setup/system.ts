/**
 * Installs the system packages a job needs, all in one `apt-get` step: as root directly, else
 * through `sudo` (non-interactive, or asking for the password when there is a terminal). A user
 * who cannot install gets one message listing everything missing and the exact command, and the
 * setup stops there ({@link SetupError}).
 *
 * @module
 */
import { onPath } from "./files.ts";
import { missingRequirements, type Purpose, type Requirement } from "./requirements.ts";

/** Setup cannot go on; the message says what is missing and how to fix it. */
export class SetupError extends Error {
  /** @param message what is missing and the command that fixes it */
  constructor(message: string) {
    super(message);
    this.name = "SetupError";
  }
}

/** How the setup may install packages here: as root, through sudo, or not at all. */
export type Installer =
  | { kind: "root" }
  | { kind: "sudo" }
  | { kind: "none"; reason: string };

/** How the system packages are installed; replaced in tests. */
export interface SystemOptions {
  /** Progress lines. Default: stderr. */
  log?: (line: string) => void;
  /** Default: found from our uid, `sudo` and the terminal. */
  installer?: Installer;
  /** Runs one command (argv), inheriting output; resolves to its exit code. */
  run?: (argv: string[]) => Promise<number>;
  /** Default: the project's list. */
  requirements?: readonly Requirement[];
}

/** The `apt-get install` line for `packages`, as printed and as run. */
export function installCommand(packages: string[], sudo: boolean): string {
  const s = sudo ? "sudo " : "";
  return `${s}apt-get update && ${s}apt-get install -y --no-install-recommends ${
    packages.join(" ")
  }`;
}

/** Finds how we may install: root, sudo without a password, sudo with a terminal to ask on. */
export async function findInstaller(): Promise<Installer> {
  if (!onPath("apt-get")) {
    return { kind: "none", reason: "apt-get is not here (not Debian/Ubuntu)" };
  }
  if (Deno.uid() === 0) return { kind: "root" };
  if (!onPath("sudo")) return { kind: "none", reason: "you are not root and sudo is not here" };
  const quiet = await new Deno.Command("sudo", {
    args: ["-n", "true"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output().catch(() => null);
  if (quiet?.success) return { kind: "sudo" };
  if (Deno.stdin.isTerminal()) return { kind: "sudo" }; // sudo asks for the password
  return { kind: "none", reason: "you are not root and sudo needs a password (no terminal)" };
}

async function runInherited(argv: string[]): Promise<number> {
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const [cmd, ...args] = argv;
  const { code } = await new Deno.Command(cmd, { args, env, stdin: "inherit" }).output();
  return code;
}

function listing(missing: Requirement[]): string {
  const width = Math.max(...missing.map((r) => r.pkg.length));
  return missing.map((r) => `  ${r.pkg.padEnd(width)}  ${r.why}`).join("\n");
}

/** The one message for a user who cannot install: everything missing, and the exact command. */
function cannotInstall(missing: Requirement[], reason: string): SetupError {
  const packages = missing.map((r) => r.pkg);
  return new SetupError(
    `setup: these system packages are missing (${reason}, so setup cannot install them):\n` +
      `${listing(missing)}\n\nInstall them as root (or with sudo), then run this again:\n\n` +
      `  ${installCommand(packages, true)}\n` +
      (packages.includes("postgresql")
        ? "\nWithout root you can use your own PostgreSQL instead of the throwaway one: set " +
          "DATABASE_URL=postgres://user:password@host:5432/db (postgresql is then not needed).\n"
        : ""),
  );
}

/**
 * Makes sure every system package `purpose` needs is installed. Returns the packages it
 * installed (empty when nothing was missing). Throws {@link SetupError} when something is missing
 * and cannot be installed here, or is still missing after installing.
 */
export async function ensureSystemPackages(
  purpose: Purpose,
  options: SystemOptions = {},
): Promise<string[]> {
  const log = options.log ?? ((line: string) => console.error(line));
  const missing = missingRequirements(purpose, options.requirements);
  if (missing.length === 0) return [];
  const packages = missing.map((r) => r.pkg);
  const installer = options.installer ?? await findInstaller();
  if (installer.kind === "none") throw cannotInstall(missing, installer.reason);
  // sudo resets the environment: hand it the one variable apt-get needs on its command line.
  const sudo = installer.kind === "sudo" ? ["sudo", "DEBIAN_FRONTEND=noninteractive"] : [];
  log(`setup: installing ${packages.length} system package(s) in one step:\n${listing(missing)}`);
  log(`setup: ${installCommand(packages, sudo.length > 0)}`);
  const run = options.run ?? runInherited;
  const steps = [
    ["apt-get", "update", "-q"],
    ["apt-get", "install", "-y", "-q", "--no-install-recommends", ...packages],
  ];
  for (const argv of steps) {
    const code = await run([...sudo, ...argv]);
    if (code !== 0 && sudo.length > 0) {
      throw cannotInstall(missing, `\`sudo ${argv.join(" ")}\` failed (exit ${code})`);
    }
    if (code !== 0) {
      throw new SetupError(
        `setup: \`${[...sudo, ...argv].join(" ")}\` failed (exit ${code}); see its output above`,
      );
    }
  }
  const still = missingRequirements(purpose, options.requirements);
  if (still.length > 0) {
    throw new SetupError(
      `setup: still missing after apt-get install:\n${listing(still)}\n` +
        "Are the package names the same on this distribution? Install them by hand, then rerun.",
    );
  }
  log(`setup: installed ${packages.join(", ")}`);
  return packages;
}
