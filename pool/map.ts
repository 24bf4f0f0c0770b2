import type { MapOptions } from "./types.ts";

/** The part of a pool that `map` needs. */
interface UsablePool<R> {
  use<T>(
    fn: (resource: R, signal: AbortSignal) => T | Promise<T>,
    options?: MapOptions,
  ): Promise<T>;
}

type Outcome<U> = { ok: true; value: U } | { ok: false };

/**
 * Runs `fn` over `items` with at most `limit` pooled resources at once and
 * yields the results in input order. The first failure aborts the shared
 * signal (so the items in flight can stop), lets every lease go back, and is
 * thrown from the generator; so is the caller's abort reason.
 */
export async function* mapWithPool<R, T, U>(
  pool: UsablePool<R>,
  items: Iterable<T> | AsyncIterable<T>,
  fn: (resource: R, item: T, signal: AbortSignal) => U | Promise<U>,
  limit: number,
  options?: MapOptions,
): AsyncGenerator<U, void, undefined> {
  const stop = new AbortController();
  const signal = options?.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const useOptions: MapOptions = { signal, timeoutMs: options?.timeoutMs };
  const source = Symbol.asyncIterator in items
    ? (items as AsyncIterable<T>)[Symbol.asyncIterator]()
    : (items as Iterable<T>)[Symbol.iterator]();
  const inFlight: Promise<Outcome<U>>[] = [];
  let failure: { error: unknown } | undefined;
  let exhausted = false;

  const start = (item: T): Promise<Outcome<U>> =>
    pool.use((resource, s) => fn(resource, item, s), useOptions).then(
      (value) => ({ ok: true as const, value }),
      (error) => {
        if (failure === undefined) {
          failure = { error };
          stop.abort(error);
        }
        return { ok: false as const };
      },
    );

  const fill = async () => {
    while (!exhausted && failure === undefined && inFlight.length < limit) {
      const next = await source.next();
      if (next.done) exhausted = true;
      else inFlight.push(start(next.value));
    }
  };

  try {
    await fill();
    while (inFlight.length > 0) {
      const outcome = await inFlight.shift()!;
      if (failure !== undefined) throw failure.error;
      if (outcome.ok) {
        await fill();
        yield outcome.value;
      }
    }
    if (options?.signal?.aborted) throw options.signal.reason;
  } finally {
    if (failure === undefined) stop.abort(new Error("map() ended early"));
    await Promise.all(inFlight);
    if (!exhausted) await source.return?.();
  }
}
