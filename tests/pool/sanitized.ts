/**
 * `Deno.test` for every test that makes a pool: Deno's op and resource
 * sanitizers are on, named here so that no test can turn them off. A pool
 * that left a timer or a resource behind after `close()` fails the test
 * that made it.
 */
export function test(
  definition: string | Omit<Deno.TestDefinition, "sanitizeOps" | "sanitizeResources">,
  fn?: (t: Deno.TestContext) => void | Promise<void>,
): void {
  const named = typeof definition === "string" ? { name: definition, fn: fn! } : definition;
  Deno.test({ ...named, sanitizeOps: true, sanitizeResources: true });
}
