import type { Timer } from "./clock.ts";
import { CHECKING, type Entry, IDLE } from "./entry.ts";
import type { Inventory, PoolLoop } from "./inventory.ts";
import type { ResolvedOptions } from "./options.ts";

/** Background health checks in flight at once: the other idle resources stay lendable. */
export const HEALTH_CHECKS_AT_ONCE = 2;

/**
 * The pool's background jobs (HikariCP's `HouseKeeper`), run by one unref'd
 * timer, so an idle open pool never keeps the process alive:
 * retire expired and invalidated idle resources, evict those idle too long,
 * check the health of idle ones a few at a time, and report leaked leases.
 * It is the only timer of an open pool that nobody waits on.
 */
export class Housekeeper<R> {
  #timer: Timer | undefined = undefined;
  #checking = 0;
  readonly #periodMs: number;

  constructor(
    readonly inventory: Inventory<R>,
    readonly shutdown: AbortSignal,
    readonly loop: PoolLoop<R>,
  ) {
    this.#periodMs = housekeepingPeriodMs(inventory.opts);
    this.#schedule();
  }

  /** Stops the jobs (the pool closes). */
  stop(): void {
    this.inventory.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Runs every job once; the timer calls this, and tests may too. */
  run(): void {
    const now = this.inventory.clock.now();
    this.retireIdle(now);
    this.checkHealth(now);
    this.scanLeaks(now);
    this.loop.dispatch(now);
  }

  /** Job: destroys idle resources past their lifetime, invalidated, or idle too long above min. */
  retireIdle(now: number): void {
    const inventory = this.inventory;
    const { idleTimeoutMs, min } = inventory.opts;
    for (const entry of [...inventory.idle]) {
      const retire = inventory.retireReason(entry, now) ??
        (now - entry.idleSince >= idleTimeoutMs && inventory.all.size > min
          ? "idle timeout"
          : undefined);
      if (retire !== undefined && inventory.idle.remove(entry)) inventory.destroy(entry, retire);
    }
  }

  /**
   * Job: validates idle resources not checked for `healthCheckIntervalMs`,
   * the longest unchecked first, at most {@link HEALTH_CHECKS_AT_ONCE} at a
   * time, so callers always find the rest of the idle resources ready.
   */
  checkHealth(now: number): void {
    const inventory = this.inventory;
    const interval = inventory.opts.healthCheckIntervalMs;
    if (interval <= 0 || inventory.factory.validate === undefined) return;
    while (this.#checking < HEALTH_CHECKS_AT_ONCE) {
      const entry = oldestUnchecked(inventory, now - interval);
      if (entry === undefined) return;
      inventory.idle.remove(entry);
      entry.startCheck(CHECKING);
      this.#checking++;
      inventory.validate(entry, this.shutdown, true).then((valid) => {
        this.#checking--;
        this.loop.checked(entry, valid);
        if (inventory.state === "open") this.checkHealth(inventory.clock.now());
      });
    }
  }

  /**
   * Job: reports each lease held longer than `leakDetectionMs`, once per
   * lease: a `leak` event, or, when nobody listens to events, a warning on
   * the console with the acquire-site stack (as HikariCP logs it).
   */
  scanLeaks(now: number): void {
    const inventory = this.inventory;
    const leakMs = inventory.opts.leakDetectionMs;
    if (leakMs <= 0) return;
    for (const entry of inventory.all) {
      if (entry.lease === 0 || entry.leakReported || now - entry.acquiredAt < leakMs) {
        continue;
      }
      entry.leakReported = true;
      inventory.counters.leaks++;
      const heldMs = now - entry.acquiredAt;
      const stack = entry.acquireSite ?? "";
      if (inventory.events.active) {
        inventory.events.emit({ type: "leak", id: entry.id, heldMs, stack });
      } else {
        console.warn(
          `Pool '${inventory.opts.name}': resource ${entry.id} has been lent for ` +
            `${Math.round(heldMs)} ms (leakDetectionMs ${leakMs}), possibly leaked; ${stack}`,
        );
      }
    }
  }

  #schedule(): void {
    this.#timer = this.inventory.clock.setTimeout(
      () => {
        this.run();
        if (this.inventory.state === "open") this.#schedule();
      },
      this.#periodMs,
      true,
    );
  }
}

function oldestUnchecked<R>(inventory: Inventory<R>, before: number): Entry<R> | undefined {
  let oldest: Entry<R> | undefined;
  for (const entry of inventory.idle) {
    if (entry.state !== IDLE || entry.checkedAt > before) continue;
    if (oldest === undefined || entry.checkedAt < oldest.checkedAt) oldest = entry;
  }
  return oldest;
}

/** One housekeeping period that is fine-grained enough for every timed option. */
function housekeepingPeriodMs(options: ResolvedOptions): number {
  const candidates = [30_000, options.idleTimeoutMs / 2, options.maxLifetimeMs / 2];
  if (options.healthCheckIntervalMs > 0) candidates.push(options.healthCheckIntervalMs);
  if (options.leakDetectionMs > 0) candidates.push(options.leakDetectionMs / 2);
  return Math.max(5, Math.min(...candidates));
}
