/**
 * What this project needs from the machine, and why: one list, checked all at once by the setup
 * task ({@link missingRequirements}) and installed in one `apt-get` step (`system.ts`).
 *
 * Each requirement names the Debian/Ubuntu package that provides it, what it is for (printed when
 * it is installed), and the jobs that need it: `demo` (the demos), `hsm` (the HSM adapter and its
 * private token), `test` (the whole suite).
 *
 * @module
 */
import { SOFTHSM2_LOCATIONS } from "../../adapters/pkcs11/library.ts";
import { isExecutable, isFile, onPath } from "./files.ts";
import { nodeGypScript, nodeHeadersPrefix } from "./pkcs11js.ts";
import { PGBOUNCER_BINARIES } from "./pgbouncer.ts";
import { postgresBinaryDirs } from "./postgres.ts";

/** A job the setup task prepares the machine for. */
export type Purpose = "test" | "demo" | "hsm";

/** One thing the machine must have. */
export interface Requirement {
  /** The Debian/Ubuntu package that provides it. */
  readonly pkg: string;
  /** What it is for, in a few words (printed before installing). */
  readonly why: string;
  /** The jobs that need it. */
  readonly neededFor: readonly Purpose[];
  /** Whether it is there. */
  readonly present: () => boolean;
}

const ALL: readonly Purpose[] = ["test", "demo", "hsm"];

/** Whether `initdb` and `pg_ctl` of some installed PostgreSQL (or of `PG_BINDIR`) are here. */
function hasPostgresServer(): boolean {
  const dirs = [Deno.env.get("PG_BINDIR"), ...postgresBinaryDirs()].filter((d) => !!d);
  return dirs.some((dir) => isExecutable(`${dir}/initdb`) && isExecutable(`${dir}/pg_ctl`));
}

/** pkcs11-spy sits in the multiarch folder (`/usr/lib/x86_64-linux-gnu/pkcs11/` and the like). */
function hasPkcs11Spy(): boolean {
  const dirs = ["/usr/lib", "/usr/lib64"];
  for (const base of dirs) {
    try {
      for (const entry of Deno.readDirSync(base)) {
        if (isFile(`${base}/${entry.name}/pkcs11/pkcs11-spy.so`)) return true;
      }
    } catch { /* no such folder */ }
    if (isFile(`${base}/pkcs11/pkcs11-spy.so`)) return true;
  }
  return false;
}

/** Everything the project needs from the machine, in install order. */
export const REQUIREMENTS: readonly Requirement[] = [
  {
    pkg: "softhsm2",
    why: "SoftHSM2, the PKCS#11 token the HSM adapter's tests and demo run on",
    neededFor: ALL,
    present: () => !!onPath("softhsm2-util") && SOFTHSM2_LOCATIONS.some((p) => isFile(p)),
  },
  {
    pkg: "postgresql",
    why: "PostgreSQL server binaries, for the throwaway cluster (or set DATABASE_URL instead)",
    neededFor: ["test", "demo"],
    present: () => !!Deno.env.get("DATABASE_URL") || hasPostgresServer(),
  },
  {
    pkg: "pgbouncer",
    why: "PgBouncer, which the PostgreSQL adapter's tests run through in transaction mode",
    neededFor: ["test"],
    present: () =>
      [Deno.env.get("PGBOUNCER"), ...PGBOUNCER_BINARIES].some((p) => !!p && isExecutable(p)),
  },
  {
    pkg: "prometheus",
    why: "promtool, which checks the service's /metrics output",
    neededFor: ["test"],
    present: () => !!onPath("promtool"),
  },
  {
    pkg: "opensc",
    why: "pkcs11-tool and pkcs11-spy, with which the PKCS#11 tests count C_Login calls",
    neededFor: ["test"],
    present: () => !!onPath("pkcs11-tool") && hasPkcs11Spy(),
  },
  {
    pkg: "g++",
    why: "a C++ compiler, to build pkcs11js's native addon",
    neededFor: ALL,
    present: () => !!(onPath("c++") ?? onPath("g++")),
  },
  {
    pkg: "gcc",
    why: "a C compiler, to build the PKCS#11 fault module tests put in front of SoftHSM2",
    neededFor: ["test"],
    present: () => !!onPath("gcc"),
  },
  {
    pkg: "make",
    why: "make, to build pkcs11js's native addon",
    neededFor: ALL,
    present: () => !!onPath("make"),
  },
  {
    pkg: "python3",
    why: "Python 3, which node-gyp needs to build pkcs11js's native addon",
    neededFor: ALL,
    present: () => !!onPath("python3"),
  },
  {
    pkg: "nodejs",
    why: "Node.js, which runs node-gyp to build pkcs11js's native addon",
    neededFor: ALL,
    present: () => !!onPath("node"),
  },
  {
    pkg: "npm",
    why: "npm, which ships node-gyp",
    neededFor: ALL,
    present: () => !!onPath("npm"),
  },
  {
    pkg: "node-gyp",
    why: "node-gyp, which builds pkcs11js's native addon (npm usually ships it)",
    neededFor: ALL,
    present: () => !onPath("npm") || nodeGypScript() !== undefined,
  },
  {
    pkg: "libnode-dev",
    why: "Node.js's C headers, to build pkcs11js's native addon without downloading them",
    neededFor: ALL,
    // NodeSource's nodejs and nvm's node carry them; Debian's and Ubuntu's put them in here.
    present: () => nodeHeadersPrefix() !== undefined,
  },
];

/** The requirements `purpose` needs that this machine lacks, all of them at once. */
export function missingRequirements(
  purpose: Purpose,
  requirements: readonly Requirement[] = REQUIREMENTS,
): Requirement[] {
  return requirements.filter((r) => r.neededFor.includes(purpose) && !r.present());
}
