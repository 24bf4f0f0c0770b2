import assert from "node:assert/strict";
import { startDatabase } from "../../tasks/setup/postgres.ts";
import { withoutPassword } from "../../service/database_pool.ts";
import { parseExposition } from "../metrics/prometheus_text.ts";
import { hasPromtool, promtoolCheckMetrics } from "../metrics/promtool.ts";
import { KEY_LABEL, startTestService } from "./fixture.ts";

Deno.test("with DATABASE_URL, the database pool shows in /pool/stats and /metrics, never its password", async () => {
  await using db = await startDatabase();
  await using t = await startTestService([], { DATABASE_URL: db.url });
  await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });

  const stats = await t.get("/pool/stats");
  assert.deepEqual(
    stats.body.pools.map((p: { name: string }) => p.name),
    [`hsm:${t.softhsm.tokenLabel}`, "postgres"],
  );
  const pg = stats.body.pools[1];
  assert.equal(pg.max_size, 4);
  assert.equal(pg.acquired, 1, "the startup check borrowed one connection");
  assert.equal(pg.in_use, 0);

  const metrics = await (await t.fetch("/metrics")).text();
  const inUse = parseExposition(metrics).get("pool_in_use")!.samples;
  assert.deepEqual(inUse.map((s) => s.labels.pool), [`hsm:${t.softhsm.tokenLabel}`, "postgres"]);
  if (hasPromtool) assert.equal((await promtoolCheckMetrics(metrics)).code, 0);

  const everything = [stats.text, metrics, (await t.get("/healthz")).text, ...t.logs].join("\n");
  assert.ok(db.password.length > 0);
  assert.ok(!everything.includes(db.password), "the database password is never shown");
});

Deno.test("a database that does not answer is logged without its password and the service still serves", async () => {
  const url = "postgres://svc:pg-Secret-42@127.0.0.1:1/nowhere";
  await using t = await startTestService([], { DATABASE_URL: url });
  assert.equal((await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" })).status, 200);
  assert.ok(t.logs.some((line) => line.includes("database check failed")));
  assert.ok(!t.logs.join("\n").includes("pg-Secret-42"));
});

Deno.test("withoutPassword masks the password and the whole URL in a message", () => {
  const url = "postgres://u:p%40ss@h:5432/d";
  assert.equal(withoutPassword(`failed: ${url} (p@ss)`, url), "failed: (DATABASE_URL) (***)");
});
