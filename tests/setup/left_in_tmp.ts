/**
 * What a setup helper leaves behind in the temp folder, for the tests that check every failure
 * path cleans up.
 *
 * @module
 */

/**
 * Runs `fn` with TMPDIR pointing at a fresh folder (readable by the `postgres` user, which the
 * throwaway servers and PgBouncer run as); returns what is left in it afterwards.
 */
export async function leftInTmp(fn: () => Promise<unknown>): Promise<string[]> {
  const tmp = await Deno.makeTempDir({ prefix: "poolkit-tmpdir-" });
  await Deno.chmod(tmp, 0o755);
  const saved = Deno.env.get("TMPDIR");
  Deno.env.set("TMPDIR", tmp);
  try {
    await fn();
    return [...Deno.readDirSync(tmp)].map((e) => e.name);
  } finally {
    if (saved === undefined) Deno.env.delete("TMPDIR");
    else Deno.env.set("TMPDIR", saved);
    await Deno.remove(tmp, { recursive: true });
  }
}
