/**
 * {@link boundWait}: the caller's `signal` and `timeoutMs` on a job that
 * waits in one of the adapter's own queues (worker batches, session loops),
 * as they bound an acquire.
 *
 * @module
 */
import { type Pool, PoolTimeoutError } from "../../mod.ts";
import type { AcquireOptions } from "../../pool/types.ts";

/** A queued job: `settle` answers its caller once; `cancelled` once the caller gave up. */
export interface QueuedJob<R> {
  /** Answers the caller; called once (later calls are ignored once bounded). */
  settle(result: R): void;
  /** Set when the caller gave up (signal, timeout) before the job was taken. */
  cancelled?: boolean;
}

/**
 * Makes `job` give up at the caller's deadline or signal, unless it is
 * settled by then; `failed` turns the reason into the job's result.
 */
export function boundWait<R>(
  job: QueuedJob<R>,
  { signal, timeoutMs }: AcquireOptions,
  pool: Pick<Pool<unknown>, "name" | "stats">,
  failed: (error: unknown) => R,
): void {
  const started = performance.now();
  const settle = job.settle;
  const giveUp = (error: unknown) => {
    job.cancelled = true;
    job.settle(failed(error));
  };
  const onAbort = () => giveUp(signal!.reason);
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
    const waited = Math.round(performance.now() - started);
    const { size, inUse, idle, pending } = pool.stats();
    giveUp(
      new PoolTimeoutError(
        `Pool '${pool.name}': no session for the operation within ${waited} ms ` +
          `(size ${size}, in use ${inUse}, idle ${idle}, waiting ${pending})`,
        waited,
      ),
    );
  }, timeoutMs);
  signal?.addEventListener("abort", onAbort, { once: true });
  job.settle = (result) => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    job.settle = () => {};
    settle(result);
  };
}
