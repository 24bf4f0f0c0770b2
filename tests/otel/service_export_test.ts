import { test } from "../pool/sanitized.ts";
import assert from "node:assert/strict";
import { spawnService } from "../service/child_service.ts";
import { OtlpReceiver } from "./otlp_receiver.ts";

test("the service run with OTEL_DENO=true exports its HSM session pool's metrics", async () => {
  await using receiver = OtlpReceiver.start();
  const child = await spawnService({
    args: ["--port", "0"],
    env: receiver.env(200),
    unset: ["SOFTHSM2_CONF", "PKCS11_MODULE", "PKCS11_TOKEN_LABEL", "PKCS11_PIN", "DATABASE_URL"],
  });
  try {
    for (let i = 0; i < 3; i++) {
      const sealed = await fetch(`${child.url}/encrypt`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ key_label: "default", plaintext: btoa(`secret ${i}`) }),
      });
      assert.equal(sealed.status, 200, await sealed.text());
    }
    const pool = { "db.client.connection.pool.name": "hsm:TestToken" };
    const mine = (name: string) =>
      receiver.latest(name).filter((p) =>
        p.attributes["db.client.connection.pool.name"] === pool["db.client.connection.pool.name"]
      );
    await receiver.waitFor(
      () => (mine("db.client.connection.use_time")[0]?.count ?? 0) >= 3,
      30_000,
      "3 uses of the HSM pool",
    );
    const counts = mine("db.client.connection.count");
    assert.deepEqual(
      counts.map((p) => p.attributes["db.client.connection.state"]).sort(),
      ["idle", "used"],
    );
    assert.ok(mine("db.client.connection.max")[0].value! >= 1);
    assert.equal(mine("db.client.connection.wait_time")[0].unit, "s");
    assert.equal(mine("db.client.connection.timeouts").length, 0, "no timeout happened");
  } finally {
    child.kill("SIGTERM");
  }
  const { code, stderr } = await child.exited();
  assert.equal(code, 0, stderr);
});
