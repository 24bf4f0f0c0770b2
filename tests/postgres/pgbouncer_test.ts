/** The adapter suites through a real PgBouncer in transaction mode (prepared statements off). */
import { startPgBouncer } from "../../tasks/setup/pgbouncer.ts";
import { startDatabase } from "../../tasks/setup/postgres.ts";
import { adapterSuite } from "./adapter_suite.ts";
import { throughPgBouncer } from "./target.ts";
import { transactionSuite } from "./transaction_suite.ts";

Deno.test("postgres adapter, through PgBouncer in transaction mode", async (t) => {
  await using db = await startDatabase();
  await using bouncer = await startPgBouncer(db, { poolMode: "transaction" });
  await adapterSuite(t, throughPgBouncer(db, bouncer));
});

Deno.test("postgres transactions, through PgBouncer in transaction mode", async (t) => {
  await using db = await startDatabase();
  await using bouncer = await startPgBouncer(db, { poolMode: "transaction" });
  await transactionSuite(t, throughPgBouncer(db, bouncer));
});
