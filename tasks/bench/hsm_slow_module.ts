/**
 * {@link useSlowModule}: a stand-in for a network HSM in experiments and
 * tests. Builds `native/slow_pkcs11.c` (with gcc, into `.local/bench/`), a
 * PKCS#11 module that forwards every call to a real module and makes each
 * `*Init` and crypto call wait first, as a round trip on a wire would,
 * without using a CPU.
 *
 * @module
 */

const root = new URL("../../", import.meta.url);

/**
 * Builds the module and points it at `inner` (the real module's path), each
 * crypto call waiting `delayUs` µs; returns its path. The module reads both
 * settings when it is first loaded, so one delay per process.
 */
export async function useSlowModule(inner: string, delayUs: number): Promise<string> {
  const dir = new URL(".local/bench/", root);
  await Deno.mkdir(dir, { recursive: true });
  const out = new URL("slow_pkcs11.so", dir).pathname;
  const headers = new URL("node_modules/pkcs11js/includes/pkcs11", root).pathname;
  const source = new URL("tasks/bench/native/slow_pkcs11.c", root).pathname;
  const gcc = await new Deno.Command("gcc", {
    args: ["-O2", "-shared", "-fPIC", "-I", headers, "-o", out, source],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!gcc.success) throw new Error(`gcc failed: ${new TextDecoder().decode(gcc.stderr)}`);
  Deno.env.set("SLOW_PKCS11_MODULE", inner);
  Deno.env.set("SLOW_PKCS11_DELAY_US", String(delayUs));
  return out;
}
