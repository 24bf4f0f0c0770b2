/**
 * Runs `promtool check metrics` (Debian package `prometheus`) on exposition
 * text, for tests. {@link hasPromtool} says whether it is on PATH.
 *
 * @module
 */

/** Whether `promtool` can be run here. */
export const hasPromtool: boolean = (() => {
  try {
    return new Deno.Command("promtool", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

/** Feeds `text` to `promtool check metrics`; returns its exit code and what it printed. */
export async function promtoolCheckMetrics(
  text: string,
): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}
