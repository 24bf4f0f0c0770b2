/**
 * Where the PKCS#11 module (the `.so` file) is: an explicit path, else
 * `PKCS11_MODULE`, else the usual SoftHSM2 install locations.
 *
 * @module
 */
import { HsmError } from "./errors.ts";

/** Where distributions put SoftHSM2's module, searched in this order. */
export const SOFTHSM2_LOCATIONS: readonly string[] = [
  "/usr/lib/softhsm/libsofthsm2.so",
  "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
  "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
  "/usr/local/lib/softhsm/libsofthsm2.so",
  "/usr/lib64/pkcs11/libsofthsm2.so",
  "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Resolves the module path. Throws an {@link HsmError} naming the path that
 * was tried and the Debian package to install when nothing is found.
 */
export function findPkcs11Module(library?: string): string {
  const explicit = library ?? Deno.env.get("PKCS11_MODULE");
  if (explicit !== undefined && explicit !== "") {
    if (isFile(explicit)) return explicit;
    throw new HsmError(
      `PKCS#11 module not found at ${explicit}: install the Debian package softhsm2 ` +
        `(apt-get install softhsm2) or point PKCS11_MODULE at your module's .so file`,
      { operation: "load" },
    );
  }
  const found = SOFTHSM2_LOCATIONS.find(isFile);
  if (found) return found;
  throw new HsmError(
    `no PKCS#11 module found (looked in ${SOFTHSM2_LOCATIONS.join(", ")}): install the ` +
      `Debian package softhsm2 (apt-get install softhsm2) or set PKCS11_MODULE`,
    { operation: "load" },
  );
}
