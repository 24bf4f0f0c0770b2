import { test } from "../pool/sanitized.ts";
import assert from "node:assert/strict";

/** The npm packages in a module's graph, from `deno info --json`. */
async function npmPackagesOf(module: string): Promise<string[]> {
  const root = new URL("../../", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", module],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const info = JSON.parse(new TextDecoder().decode(stdout));
  const modules: { kind: string; npmPackage?: string }[] = info.modules;
  return modules.filter((m) => m.kind === "npm").map((m) => m.npmPackage!);
}

test("mod.ts does not load @opentelemetry/api", async () => {
  const packages = await npmPackagesOf("mod.ts");
  assert.ok(!packages.some((p) => p.startsWith("@opentelemetry/")), packages.join(", "));
});

test("otel/mod.ts loads @opentelemetry/api, pinned", async () => {
  const packages = await npmPackagesOf("otel/mod.ts");
  assert.ok(packages.includes("@opentelemetry/api@1.10.0"), packages.join(", "));
});

test("otel/mod.ts exports only what users call: instrumentPool", async () => {
  const exports = Object.keys(await import("../../otel/mod.ts"));
  assert.deepEqual(exports, ["instrumentPool"]);
});
