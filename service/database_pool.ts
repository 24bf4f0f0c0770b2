/**
 * The optional PostgreSQL pool: when `DATABASE_URL` is set, the service
 * opens a small pool on it so `/pool/stats` and `/metrics` show the database
 * next to the HSM (the secret manager's operators watch both). Encryption
 * never depends on it: a database that does not answer is logged, not fatal.
 *
 * @module
 */

import { createPostgresPool, type PostgresPool } from "../adapters/postgres/mod.ts";
import { errorText, type Logger } from "./log.ts";

/** Masks the URL's password wherever it appears in `text`. */
export function withoutPassword(text: string, url: string): string {
  let password = "";
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    return text.replaceAll(url, "(DATABASE_URL)");
  }
  let out = text.replaceAll(url, "(DATABASE_URL)");
  if (password) {
    out = out.replaceAll(password, "***").replaceAll(encodeURIComponent(password), "***");
  }
  return out;
}

/** Opens the pool and checks it once (`select 1`); a failed check is logged without secrets. */
export async function openDatabasePool(url: string, log: Logger): Promise<PostgresPool> {
  const pool = createPostgresPool({ url, pool: { min: 0, max: 4, acquireTimeoutMs: 5_000 } });
  try {
    await pool.query`select 1`;
    log("info", "database pool ready", { pool: pool.stats().name });
  } catch (error) {
    log("warn", "database check failed; its pool is shown but may be down", {
      error: withoutPassword(errorText(error), url),
    });
  }
  return pool;
}
