/**
 * The PostgreSQL every database benchmark runs against: `DATABASE_URL` or a
 * throwaway cluster (the same helper as the tests), plus the `pedido` table.
 * One instance is shared by the benchmarks of a run.
 *
 * @module
 */

import { type Database, startDatabase } from "../setup/postgres.ts";

/** What a database benchmark needs to know. */
export interface PgContext {
  /** Connection URL (contains the password: never print it). */
  url: string;
  /** The URL with the password masked. */
  display: string;
  /** The table inserts go to (`pedido`, or `schema.pedido` on a shared server). */
  pedido: string;
  /** Server version string. */
  serverVersion: string;
}

/** The `pedido` table of the orders demo (issue 4). */
const PEDIDO_DDL = `(
  id serial primary key,
  cliente varchar(50) not null,
  descripcion text not null,
  fecha_pedido date not null
)`;

let shared: { db: Database; ctx: PgContext; users: number } | undefined;

/** Starts (or reuses) the database; call the returned function when done with it. */
export async function acquirePgContext(
  log: (line: string) => void,
): Promise<{ ctx: PgContext; release: () => Promise<void> }> {
  if (!shared) {
    const db = await startDatabase({ log });
    try {
      const pedido = db.table("pedido");
      await db.admin.unsafe(`create table if not exists ${pedido} ${PEDIDO_DDL}`);
      const [{ server_version }] = await db.admin`show server_version`;
      shared = {
        db,
        users: 0,
        ctx: { url: db.url, display: db.display, pedido, serverVersion: server_version },
      };
    } catch (error) {
      await db.stop();
      throw error;
    }
  }
  const s = shared;
  s.users++;
  let released = false;
  return {
    ctx: s.ctx,
    release: async () => {
      if (released) return;
      released = true;
      if (--s.users > 0) return;
      shared = undefined;
      // A cleanup failure (the folder already gone) must not hide the figures already measured.
      await s.db.stop().catch((e) =>
        log(`PostgreSQL cleanup: ${e instanceof Error ? e.message : e}`)
      );
    },
  };
}

/** The row every insert benchmark writes. */
export const ORDER_ROW = {
  cliente: "bench",
  descripcion: "one order from the benchmark",
  fecha_pedido: "2026-01-15",
} as const;
