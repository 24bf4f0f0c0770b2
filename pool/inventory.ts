import type { Clock } from "./clock.ts";
import { Deque } from "./deque.ts";
import { Entry } from "./entry.ts";
import type { PoolSnapshot } from "./errors.ts";
import { EventHub } from "./events.ts";
import { callHook } from "./hooks.ts";
import type { ResolvedOptions } from "./options.ts";
import type { PoolTracker } from "./tracker.ts";
import type { PoolEvent, PoolState, PoolStats, ResourceFactory } from "./types.ts";
import { DurationHistogram } from "./wait_stats.ts";

const DONE = Promise.resolve();
const LIFETIME_JITTER = 0.02; // up to 2% earlier, so resources made together do not all expire together

/** The pool's traffic counters, as `stats()` reports them. */
export type Counters = Pick<
  PoolStats,
  | "created"
  | "destroyed"
  | "acquired"
  | "released"
  | "timedOut"
  | "aborted"
  | "createErrors"
  | "leaks"
  | "errors"
>;

/**
 * What a pool owns, shared by the parts that act on it (the pool itself,
 * the creator, the housekeeper): every resource, the idle ones, the
 * counters, the event hub, and the one way to destroy a resource.
 */
export class Inventory<R> {
  /** The pool's lifecycle state. */
  state: PoolState = "open";
  /** Every live resource (idle, lent, being checked). */
  readonly all = new Set<Entry<R>>();
  /** The idle ones, oldest at the front. */
  readonly idle = new Deque<Entry<R>>();
  /** `invalidate()` bumps it: entries of an older generation are retired. */
  generation = 0;
  /** Traffic counters. */
  readonly counters: Counters = {
    created: 0,
    destroyed: 0,
    acquired: 0,
    released: 0,
    timedOut: 0,
    aborted: 0,
    createErrors: 0,
    leaks: 0,
    errors: 0,
  };
  /** Subscribers of `events()`. */
  readonly events = new EventHub<PoolEvent>();
  /** How long creates took. */
  readonly createTimes = new DurationHistogram();
  /** Who else wants each timing as it happens (`pool.track()`). */
  tracker: PoolTracker | undefined = undefined;
  /** Destroy hooks still running (each bounded by `hookTimeoutMs`). */
  readonly destroying = new Set<Promise<void>>();
  /** Called when a destroy hook settles, so a closing pool can finish. */
  onDestroyed: () => void = () => {};
  #nextId = 1;

  /** The hooks (copied from the options, so later changes to them do not leak in). */
  readonly factory: ResourceFactory<R>;

  constructor(
    /** Checked options (`resize` changes min/max/maxIdle). */
    readonly opts: ResolvedOptions,
    hooks: ResourceFactory<R>,
    /** Time source. */
    readonly clock: Clock,
  ) {
    const { create, destroy, validate, reset, isFatal, isPermanent } = hooks;
    this.factory = { create, destroy, validate, reset, isFatal, isPermanent };
  }

  /** Registers a new resource. */
  add(resource: R, now: number): Entry<R> {
    const lifetime = this.opts.maxLifetimeMs * (1 - Math.random() * LIFETIME_JITTER);
    const entry = new Entry(this.#nextId++, resource, now, now + lifetime, this.generation);
    this.all.add(entry);
    this.counters.created++;
    if (this.events.active) this.events.emit({ type: "create", id: entry.id });
    return entry;
  }

  /** Takes the idle entry that `order` says goes next. */
  takeIdle(): Entry<R> | undefined {
    return this.opts.order === "lifo" ? this.idle.pop() : this.idle.shift();
  }

  /**
   * Destroys an entry that is no longer in `idle`. Resolves when the hook
   * settles or its deadline passes, whichever is first; never rejects.
   */
  destroy(entry: Entry<R>, reason: string): Promise<void> {
    if (!entry.remove()) return DONE;
    this.all.delete(entry);
    this.counters.destroyed++;
    if (this.events.active) this.events.emit({ type: "destroy", id: entry.id, reason });
    const destroy = this.factory.destroy;
    if (destroy === undefined) return DONE;
    const done = callHook(
      this.clock,
      "destroy",
      this.opts.hookTimeoutMs,
      () => destroy(entry.resource),
    ).catch((error) => this.backgroundError("destroy", error));
    this.destroying.add(done);
    return done.finally(() => {
      this.destroying.delete(done);
      this.onDestroyed();
    });
  }

  /** Why an entry must not be handed out (or kept) any more, if it must not. */
  retireReason(entry: Entry<R>, now: number): string | undefined {
    if (this.state !== "open") return "pool closed";
    if (entry.generation < this.generation) return "invalidated";
    if (now >= entry.expiresAt) return "maxLifetimeMs reached";
    if (entry.uses >= this.opts.maxUses) return "maxUses reached";
    if (this.all.size > this.opts.max) return "pool shrunk";
    return undefined;
  }

  /** Whether an idle entry must pass `validate` before it is lent. */
  needsValidation(entry: Entry<R>, now: number): boolean {
    return this.factory.validate !== undefined &&
      now - entry.idleSince >= this.opts.validateAfterMs;
  }

  /**
   * Runs `validate` under its deadline. Resolves true only for a resource
   * that answered anything but `false` in time; a throw or a hang is an
   * `error` event and counts as failed.
   */
  async validate(entry: Entry<R>, shutdown: AbortSignal, background: boolean): Promise<boolean> {
    const validate = this.factory.validate!;
    try {
      const ok = await callHook(
        this.clock,
        "validate",
        this.opts.hookTimeoutMs,
        (signal) => validate(entry.resource, signal),
        shutdown,
        background,
      );
      return ok !== false;
    } catch (error) {
      if (!shutdown.aborted) this.backgroundError("validate", error);
      return false;
    }
  }

  /** Runs `reset` under its deadline; false (after an `error` event) if it threw or hung. */
  async reset(entry: Entry<R>): Promise<boolean> {
    const reset = this.factory.reset!;
    try {
      await callHook(this.clock, "reset", this.opts.hookTimeoutMs, () => reset(entry.resource));
      return true;
    } catch (error) {
      this.backgroundError("reset", error);
      return false;
    }
  }

  /** Whether `isFatal` calls an error from `use()` fatal; a classifier that throws says yes. */
  isFatal(error: unknown, resource: R): boolean {
    const isFatal = this.factory.isFatal;
    if (isFatal === undefined) return false;
    try {
      return isFatal(error, resource) === true;
    } catch (thrown) {
      this.backgroundError("isFatal", thrown);
      return true; // a classifier that breaks cannot vouch for the resource
    }
  }

  /** Background work failed or hung: a counter and an `error` event, never a caller's problem. */
  backgroundError(during: string, error: unknown): void {
    this.counters.errors++;
    if (this.events.active) this.events.emit({ type: "error", during, error });
  }

  /** The numbers an error message carries. */
  snapshot(waiting: number): PoolSnapshot {
    return {
      name: this.opts.name,
      size: this.all.size,
      max: this.opts.max,
      idle: this.idle.length,
      waiting,
    };
  }
}
