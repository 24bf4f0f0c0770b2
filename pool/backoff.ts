/** First retry delay after a failed `create`, before jitter. */
export const BACKOFF_BASE_MS = 100;
/**
 * No retry waits longer than this, so a backend that comes back is used
 * within about a second (HikariCP and psycopg_pool retry on the same scale).
 */
export const BACKOFF_CAP_MS = 1_000;

/**
 * The delay before retry number `attempt` (1-based): exponential from
 * {@link BACKOFF_BASE_MS}, capped at {@link BACKOFF_CAP_MS}, with jitter that
 * keeps between half and all of it, so pools restarting together spread out.
 */
export function backoffDelayMs(attempt: number, random: () => number = Math.random): number {
  const exponential = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
  return exponential * (0.5 + random() / 2);
}
