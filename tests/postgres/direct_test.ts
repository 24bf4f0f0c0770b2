/** The adapter suites against PostgreSQL itself (a throwaway cluster, or DATABASE_URL). */
import assert from "node:assert/strict";
import { createPostgresPool } from "../../adapters/postgres/mod.ts";
import type { PgConnection } from "../../adapters/postgres/connection.ts";
import { startDatabase } from "../../tasks/setup/postgres.ts";
import { adapterSuite } from "./adapter_suite.ts";
import { direct } from "./target.ts";
import { transactionSuite } from "./transaction_suite.ts";

Deno.test("postgres adapter, connected directly", async (t) => {
  await using db = await startDatabase();
  await adapterSuite(t, direct(db));
});

Deno.test("postgres transactions, connected directly", async (t) => {
  await using db = await startDatabase();
  await transactionSuite(t, direct(db));
});

Deno.test("postgres transactions, when the transaction status cannot be read (TLS fallback)", async (t) => {
  await using db = await startDatabase();
  // `ssl: "prefer"` against a server without TLS: the adapter does not watch a socket that may
  // turn to TLS, so it runs with the status unknown, as over TLS, on a plaintext connection.
  {
    await using pg = createPostgresPool({ url: db.url, ssl: "prefer" });
    await using lease = await pg.acquire();
    assert.equal(
      (lease.resource as PgConnection).txStatus,
      "unknown",
      "this run exercises the fallback",
    );
  }
  await transactionSuite(t, { ...direct(db), name: "status unknown", driver: { ssl: "prefer" } });
});
