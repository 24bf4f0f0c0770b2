/** The adapter suites against PostgreSQL itself (a throwaway cluster, or DATABASE_URL). */
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
