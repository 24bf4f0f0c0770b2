/** The adapter suite against PostgreSQL itself (a throwaway cluster, or DATABASE_URL). */
import { startDatabase } from "../../tasks/setup/postgres.ts";
import { adapterSuite } from "./adapter_suite.ts";
import { direct } from "./target.ts";

Deno.test("postgres adapter, connected directly", async (t) => {
  await using db = await startDatabase();
  await adapterSuite(t, direct(db));
});
