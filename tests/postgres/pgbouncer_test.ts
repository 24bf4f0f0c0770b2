/** The same adapter suite through a real PgBouncer in transaction mode (prepared statements off). */
import { startPgBouncer } from "../../tasks/setup/pgbouncer.ts";
import { startDatabase } from "../../tasks/setup/postgres.ts";
import { adapterSuite } from "./adapter_suite.ts";
import { throughPgBouncer } from "./target.ts";

Deno.test("postgres adapter, through PgBouncer in transaction mode", async (t) => {
  await using db = await startDatabase();
  await using bouncer = await startPgBouncer(db, { poolMode: "transaction" });
  await adapterSuite(t, throughPgBouncer(db, bouncer));
});
