/**
 * What the pool reports about its hosts: their state in `stats().hosts`, and the events
 * `pg.events()` carries besides the core pool's (a host went down or came back, a host's role
 * changed). Host labels (`host:port`) come from the configured list, so they are bounded.
 *
 * @module
 */
import type { PoolEvent, PoolStats } from "../../mod.ts";
import { EventHub } from "../../pool/events.ts";

/** A host's role as last seen: `unknown` until a connection has told. */
export type HostRole = "primary" | "standby" | "unknown";

/** One host in {@link PostgresPoolStats}. */
export interface HostStats {
  /** `host:port`, as configured. */
  host: string;
  /** Its role as last seen (`in_hot_standby`, or `pg_is_in_recovery()`). */
  role: HostRole;
  /** `down` after a failed connect, until a probe or a connect succeeds. */
  state: "up" | "down";
  /** Pooled connections on it. */
  connections: number;
  /** Why the last connect failed, while it is down (never a password). */
  lastError?: string;
}

/** The pool's statistics plus its hosts. */
export interface PostgresPoolStats extends PoolStats {
  /** Each configured host, in order. */
  hosts: HostStats[];
}

/** A host's state changed. */
export type HostEvent =
  | { type: "host-down"; host: string; error: string }
  | { type: "host-up"; host: string }
  | { type: "role-changed"; host: string; from: HostRole; to: HostRole };

/** What `pg.events()` yields: the core pool's events and the hosts'. */
export type PostgresPoolEvent = PoolEvent | HostEvent;

/** The host events of one pool, fanned out to their readers. */
export class HostEventHub {
  readonly #hub = new EventHub<HostEvent>();

  /** Delivers `event` to every reader (nothing to do without one). */
  readonly emit = (event: HostEvent): void => {
    if (this.#hub.active) this.#hub.emit(event);
  };

  /** Ends every stream. */
  close(): void {
    this.#hub.close();
  }

  /** The pool's events (`core`) merged with the host events from now on. */
  merged(
    core: AsyncIterableIterator<PoolEvent>,
    bufferSize: number,
    signal: AbortSignal | undefined,
  ): AsyncIterableIterator<PostgresPoolEvent> {
    return merge<PostgresPoolEvent>(core, this.#hub.subscribe(bufferSize, signal));
  }
}

/** Yields from both streams as events arrive; ends when both have; `return()` ends both. */
function merge<E>(
  a: AsyncIterableIterator<E>,
  b: AsyncIterableIterator<E>,
): AsyncIterableIterator<E> {
  const sources = [a, b];
  const pending = new Map<number, Promise<{ i: number; result: IteratorResult<E> }>>();
  const pull = (i: number) => pending.set(i, sources[i].next().then((result) => ({ i, result })));
  pull(0);
  pull(1);
  const iterator: AsyncIterableIterator<E> = {
    async next() {
      while (pending.size > 0) {
        const { i, result } = await Promise.race(pending.values());
        if (result.done) {
          pending.delete(i);
          continue;
        }
        pull(i);
        return { done: false, value: result.value };
      }
      return { done: true, value: undefined };
    },
    async return() {
      pending.clear();
      await Promise.all(sources.map((s) => s.return?.()));
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
