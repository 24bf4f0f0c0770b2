/**
 * `deno task demo:orders`: the orders DAO over the pool, on a real PostgreSQL (DATABASE_URL, or
 * a throwaway cluster started and removed for this run). Creates `pedido` if missing, inserts
 * orders in one transaction, lists them, finds one, deletes one; then a nested transaction
 * (a savepoint) that fails, and a query past its `timeoutMs`.
 *
 * @module
 */
import { createPostgresPool } from "../adapters/postgres/mod.ts";
import { startDatabase } from "./setup/postgres.ts";
import { type Order, OrderDao } from "./orders/order_dao.ts";

const log = (line: string) => console.error(`· ${line}`);

await using db = await startDatabase({ log });
log(`database: ${db.display}${db.schema ? ` (schema ${db.schema})` : ""}`);
await using pg = createPostgresPool({ url: db.url, pool: { name: "orders", max: 5 } });
const dao = new OrderDao(pg, db.table("pedido"));

await dao.ensureTable();
log(`table ${dao.table} ready`);

const today = new Date().toISOString().slice(0, 10);
const inserted = await pg.transaction(async () => [
  await dao.insert({ cliente: "Ana Pérez", descripcion: "2 cafés y un té", fechaPedido: today }),
  await dao.insert({ cliente: "Luis Gómez", descripcion: "1 bocadillo de jamón" }),
  await dao.insert({
    cliente: "Marta Ruiz",
    descripcion: "tarta de queso",
    fechaPedido: "2024-05-17",
  }),
]);
console.log(
  `inserted ${inserted.length} orders in one transaction (ids ${
    inserted.map((o) => o.id).join(", ")
  })\n`,
);

console.log(table(await dao.list()));

const found = await dao.findById(inserted[1].id);
console.log(
  `\nfind by id ${inserted[1].id}: ${found ? `${found.cliente}, ${found.descripcion}` : "none"}`,
);

const deleted = await dao.delete(inserted[0].id);
console.log(`delete id ${inserted[0].id}: ${deleted ? "deleted" : "not found"}`);
console.log(`find by id ${inserted[0].id}: ${(await dao.findById(inserted[0].id)) ?? "none"}`);
console.log(`orders now: ${await dao.count()}`);

// A nested transaction is a savepoint: the failed inner order is undone, the outer one is kept.
await pg.transaction(async () => {
  await dao.insert({ cliente: "Pablo Díaz", descripcion: "zumo de naranja" });
  await pg.transaction(async () => {
    await dao.insert({ cliente: "Pablo Díaz", descripcion: "pedido duplicado" });
    throw new Error("duplicate order");
  }).catch((error: Error) => console.log(`\nnested transaction rolled back: ${error.message}`));
});
console.log(`after the savepoint: ${await dao.count()} orders (the outer insert kept)`);

// timeoutMs bounds the wait for a connection and the statement; the statement is cancelled.
await pg.query("select pg_sleep(5)", [], { timeoutMs: 200 }).catch((error: Error) =>
  console.log(`timeout: ${error.name}: ${error.message}`)
);

const s = pg.stats();
console.log(
  `\npool "${s.name}": ${s.created} connection(s) opened, ${s.acquired} borrow(s), ` +
    `${s.inUse} in use, ${s.idle} idle`,
);

function table(orders: Order[]): string {
  const head = ["id", "cliente", "descripcion", "fecha_pedido"];
  const rows = orders.map((o) => [String(o.id), o.cliente, o.descripcion, o.fechaPedido]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => i === 0 ? c.padStart(widths[i]) : c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}
