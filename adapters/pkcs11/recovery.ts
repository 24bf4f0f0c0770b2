/**
 * {@link Recovery}: the background probes of the members of a group that
 * are out of rotation. One probe at a time per member; after a failed one
 * the wait doubles, from `minMs` up to `maxMs`; a probe that says it is
 * done (the member is back, or can never come back) ends the member's
 * probing. Timers are unref'd (a probe never keeps the process alive) and
 * run on an injectable clock, so tests can drive the backoff.
 *
 * @module
 */
import type { Clock, Timer } from "../../pool/clock.ts";

/** One probe: resolves `true` when probing may stop, `false` to try again later. */
export type Probe = () => Promise<boolean>;

/** The probes of one handle's members. */
export class Recovery {
  readonly #clock: Clock;
  readonly #minMs: number;
  readonly #maxMs: number;
  readonly #timers = new Map<object, Timer>();
  readonly #running = new Set<Promise<void>>();
  #closed = false;

  /** Probes on `clock`, waiting `minMs` before the first probe and at most `maxMs` between two. */
  constructor(clock: Clock, minMs: number, maxMs: number) {
    this.#clock = clock;
    this.#minMs = minMs;
    this.#maxMs = maxMs;
  }

  /** Starts probing `member` with `probe`, unless it is probed already. */
  start(member: object, probe: Probe): void {
    if (this.#closed || this.#timers.has(member)) return;
    this.#schedule(member, probe, this.#minMs);
  }

  /** Whether `member` has a probe waiting or running. */
  probing(member: object): boolean {
    return this.#timers.has(member);
  }

  #schedule(member: object, probe: Probe, waitMs: number): void {
    const timer = this.#clock.setTimeout(
      () => {
        const run = probe().catch(() => false).then((done) => {
          this.#running.delete(run);
          if (done || this.#closed) this.#timers.delete(member);
          else this.#schedule(member, probe, Math.min(waitMs * 2, this.#maxMs));
        });
        this.#running.add(run);
      },
      waitMs,
      true,
    );
    this.#timers.set(member, timer);
  }

  /** Stops every probe; resolves once none runs. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers.values()) this.#clock.clearTimeout(timer);
    this.#timers.clear();
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }
}
