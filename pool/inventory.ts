import type { Clock } from "./clock.ts";
import { Entry } from "./entry.ts";
import { hookTimeoutError, type PoolSnapshot } from "./errors.ts";
import { EventHub } from "./events.ts";
import { DurationHistogram, type Timings } from "./metrics.ts";
import type { ResolvedOptions } from "./options.ts";
import type { PoolEvent, PoolState, PoolStats, ResourceFactory } from "./types.ts";

/** The settled promise the pool returns when nothing is left to wait for (one, so it can be told apart). */
export const DONE: Promise<void> = Promise.resolve();
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
 * How the parts of a pool (creator, housekeeper, lender, inventory) hand
 * control back to it: the one callback interface into the pool besides a
 * lease's way back ({@link LeaseOwner}).
 */
export interface PoolLoop<R> {
  /** Something changed: decide again what happens next (serve, grow, finish a close). */
  dispatch(now: number): void;
  /** A check of `entry` finished: place it (a waiter, idle) or destroy it. */
  checked(entry: Entry<R>, valid: boolean): void;
  /** A create succeeded: place the resource. */
  created(resource: R, now: number): void;
  /** A create failed; `opened`: the breaker just opened. */
  createFailed(error: unknown, now: number, opened: boolean): void;
  /** Whether a caller waits (only then does a retry timer keep the process alive). */
  hasWaiters(): boolean;
}

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
  tracker: Timings | undefined = undefined;
  /** Destroy hooks still running (each bounded by `hookTimeoutMs`). */
  readonly destroying = new Set<Promise<void>>();
  /** Aborted when a close gives up on what is still running: destroys stop being awaited. */
  readonly #abandon = new AbortController();
  #nextId = 1;

  /** The hooks (copied from the options, so later changes to them do not leak in). */
  readonly factory: ResourceFactory<R>;

  constructor(
    /** Checked options (`resize` changes min/max/maxIdle). */
    readonly opts: ResolvedOptions,
    hooks: ResourceFactory<R>,
    /** Time source. */
    readonly clock: Clock,
    /** Told when a destroy hook settles, so that a closing pool can finish. */
    readonly loop: PoolLoop<R>,
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
    const abandon = this.#abandon.signal;
    const done = callHook(
      this.clock,
      "destroy",
      this.opts.hookTimeoutMs,
      () => destroy(entry.resource),
      abandon,
    ).catch((error) => {
      if (!abandon.aborted) this.backgroundError("destroy", error);
    });
    this.destroying.add(done);
    return done.finally(() => {
      this.destroying.delete(done);
      this.loop.dispatch(this.clock.now());
    });
  }

  /** A forced close is over: stop waiting for destroy hooks (their deadline timers go too). */
  abandonDestroys(): void {
    this.#abandon.abort(new Error("the pool closed"));
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

// ---- hooks under a deadline ---------------------------------------------------------------

/**
 * Calls a factory hook and bounds how long anyone waits for it: past `ms`
 * the returned promise rejects with a `PoolTimeoutError` naming the hook,
 * and `signal` (if the hook takes one) aborts with it, even if the hook
 * itself never settles. When `parent` aborts (the pool closes) it rejects
 * at once with its reason. A hook that throws synchronously rejects too.
 * The deadline timer keeps the process alive (someone awaits the hook),
 * except for `background` work such as health checks. A hook that answers
 * synchronously (a value, not a promise) needs no deadline: no timer and no
 * listener are made for it.
 */
export function callHook<T>(
  clock: Clock,
  hook: string,
  ms: number,
  call: (signal: AbortSignal) => T | Promise<T>,
  parent?: AbortSignal,
  background = false,
): Promise<T> {
  // One controller, aborted by the deadline or by `parent`: no AbortSignal.any per call.
  const controller = new AbortController();
  if (parent?.aborted) controller.abort(parent.reason);
  let result: T | Promise<T>;
  try {
    result = call(controller.signal);
  } catch (error) {
    return Promise.reject(error);
  }
  // A synchronous answer is in time by definition: no timer, no listener.
  if (!isThenable(result)) return Promise.resolve(result);
  if (ms === Infinity && parent === undefined) return Promise.resolve(result);
  return bounded(clock, hook, ms, result, controller, parent, background);
}

function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/** The deadline and the parent's abort around a hook that answered with a promise. */
function bounded<T>(
  clock: Clock,
  hook: string,
  ms: number,
  running: Promise<T>,
  controller: AbortController,
  parent: AbortSignal | undefined,
  background: boolean,
): Promise<T> {
  // Whichever comes first (the answer, the deadline, the parent's abort) settles it and
  // removes the other two, so nothing of the hook's is left scheduled.
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  const done = () => {
    clock.clearTimeout(timer);
    parent?.removeEventListener("abort", onParentAbort);
  };
  const expire = () => {
    done();
    const error = hookTimeoutError(hook, ms);
    controller.abort(error);
    reject(error);
  };
  const onParentAbort = () => {
    done();
    controller.abort(parent!.reason);
    reject(parent!.reason);
  };
  const timer = ms === Infinity || parent?.aborted
    ? undefined
    : clock.setTimeout(expire, ms, background);
  if (parent?.aborted) reject(parent.reason);
  else parent?.addEventListener("abort", onParentAbort, { once: true });
  Promise.resolve(running).then(
    (value) => (done(), resolve(value)),
    (error) => (done(), reject(error)),
  );
  return promise;
}

// ---- the idle queue ---------------------------------------------------------------------

/**
 * A double-ended queue on a growable ring buffer: O(1) at both ends, which a
 * plain array's `shift()` is not once it grows. Holds the idle resources and
 * the waiting callers.
 */
export class Deque<T> {
  #items: (T | undefined)[] = new Array(16);
  #head = 0;
  #length = 0;

  /** Number of items. */
  get length(): number {
    return this.#length;
  }

  /** Adds an item at the back. */
  push(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#length) & (this.#items.length - 1)] = item;
    this.#length++;
  }

  /** Removes and returns the front item. */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#items.length - 1);
    this.#length--;
    return item;
  }

  /** Removes and returns the back item. */
  pop(): T | undefined {
    if (this.#length === 0) return undefined;
    const index = (this.#head + this.#length - 1) & (this.#items.length - 1);
    const item = this.#items[index];
    this.#items[index] = undefined;
    this.#length--;
    return item;
  }

  /** The front item, left in place. */
  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  /** The back item, left in place. */
  last(): T | undefined {
    return this.#length === 0
      ? undefined
      : this.#items[(this.#head + this.#length - 1) & (this.#items.length - 1)];
  }

  /** Removes one item wherever it is (O(n)); returns whether it was there. */
  remove(item: T): boolean {
    const mask = this.#items.length - 1;
    for (let i = 0; i < this.#length; i++) {
      if (this.#items[(this.#head + i) & mask] !== item) continue;
      for (let j = i; j < this.#length - 1; j++) {
        this.#items[(this.#head + j) & mask] = this.#items[(this.#head + j + 1) & mask];
      }
      this.#items[(this.#head + this.#length - 1) & mask] = undefined;
      this.#length--;
      return true;
    }
    return false;
  }

  /** Removes and returns every item, front first. */
  drain(): T[] {
    const out: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) out.push(item);
    return out;
  }

  /** Iterates front to back without removing. */
  *[Symbol.iterator](): IterableIterator<T> {
    const mask = this.#items.length - 1;
    for (let i = 0; i < this.#length; i++) yield this.#items[(this.#head + i) & mask] as T;
  }

  #grow(): void {
    const old = this.#items;
    const next: (T | undefined)[] = new Array(old.length * 2);
    for (let i = 0; i < this.#length; i++) next[i] = old[(this.#head + i) & (old.length - 1)];
    this.#items = next;
    this.#head = 0;
  }
}
