import assert from "node:assert/strict";
import { parseExposition } from "../metrics/prometheus_text.ts";
import { hasPromtool, promtoolCheckMetrics } from "../metrics/promtool.ts";
import { KEY_LABEL, startTestService } from "./fixture.ts";

Deno.test("/metrics is strict Prometheus text 0.0.4 with the HSM pool's families", async () => {
  await using t = await startTestService();
  await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: btoa("counted") });
  const response = await t.fetch("/metrics");
  assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const families = parseExposition(await response.text());
  const pool = `hsm:${t.softhsm.tokenLabel}`;
  const sample = (name: string) =>
    families.get(name)?.samples.find((s) => s.labels.pool === pool)?.value;
  assert.equal(sample("pool_max_size"), 4);
  assert.equal(sample("pool_in_use"), 0);
  assert.ok(sample("pool_acquired_total")! >= 2, "startup key check and the encrypt");
  assert.equal(families.get("pool_acquire_wait_seconds")?.type, "histogram");
  assert.equal(
    families.get("pool_breaker_state")?.samples.find((s) =>
      s.labels.pool === pool && s.labels.state === "closed"
    )?.value,
    1,
  );
  const requests = families.get("secret_manager_http_requests_total")!.samples;
  assert.equal(
    requests.find((s) => s.labels.path === "/encrypt" && s.labels.code === "200")?.value,
    1,
  );
});

Deno.test({
  name: "promtool check metrics accepts /metrics",
  ignore: !hasPromtool,
  async fn() {
    await using t = await startTestService();
    await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });
    await t.get("/nope");
    const { code, output } = await promtoolCheckMetrics(await (await t.fetch("/metrics")).text());
    assert.equal(code, 0, output);
  },
});

Deno.test("HEAD /metrics answers like GET without a body", async () => {
  await using t = await startTestService();
  const response = await t.fetch("/metrics", { method: "HEAD" });
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "");
});
