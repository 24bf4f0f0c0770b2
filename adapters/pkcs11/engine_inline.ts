/**
 * {@link inlineWhenFast}: the bytes calls of the default engine's lone
 * operations. pkcs11js has no async `*Init`, so every engine that runs on
 * this thread already blocks the event loop for the `*Init`; the call after
 * it goes to libuv's thread pool, which costs a hand-off to another thread
 * and back (tens of µs here, more than SoftHSM's whole AES-GCM call, 6 µs).
 *
 * So the call runs right here when the module proves fast: its `*Init`
 * took under {@link FAST_CALL_MS}, and the calls of this kind run here
 * took under that on average lately (a moving average in which one sample
 * counts for at most 4 × {@link FAST_CALL_MS}: on a busy machine the
 * thread is sometimes preempted in the middle of a call, and one late call
 * must not change the choice). Once the average passes it, that kind of
 * call goes through the thread pool for {@link SLOW_CALL_HOLD_MS}, then one
 * call is tried here again. A module that answers over a network (its
 * `*Init` is a round trip) never runs a call here; a local one with a slow
 * operation (RSA-4096 on a software token) blocks the event loop for a few
 * calls, then for one call a second.
 *
 * Calls run here answer at once (a resolved promise), so a caller that
 * awaits one operation after another would never let the event loop turn
 * (its timers and I/O wait for a macrotask turn): when the loop has not
 * turned for {@link TURN_BUDGET_MS}, a result waits for its next turn.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import type { BytesCall } from "./engine.ts";
import { init } from "./engine.ts";
import { callAsync, filled, STEPS } from "./engine_local.ts";
import { toHsmError } from "./errors.ts";
import { NATIVE, nonNull } from "./native.ts";

/** A `*Init` or call that takes at least this long is not run on the event loop's thread. */
export const FAST_CALL_MS = 0.1;
/** How long a slow call keeps its kind on the thread pool before it is tried here again. */
export const SLOW_CALL_HOLD_MS = 1000;

/** How long calls run here may keep the event loop from turning. */
export const TURN_BUDGET_MS = 1;

/**
 * Whether the event loop turned lately: a probe (`setImmediate`) is
 * scheduled when none is pending; while one has been pending for longer than
 * {@link TURN_BUDGET_MS}, results wait for it.
 */
class LoopTurns {
  #next: Promise<void> | undefined;
  #since = 0;

  /** `undefined` when the loop turned lately, else a promise of its next turn. */
  starved(now: number): Promise<void> | undefined {
    if (this.#next === undefined) {
      this.#since = now;
      this.#next = new Promise((resolve) =>
        setImmediate(() => {
          this.#next = undefined;
          resolve();
        })
      );
      return undefined;
    }
    return now - this.#since > TURN_BUDGET_MS ? this.#next : undefined;
  }
}

/** One event loop per thread: one record of its turns. */
const turns = new LoopTurns();

/** A sample's weight in the moving average of call times. */
const WEIGHT = 1 / 16;
/** The most one sample counts for. */
const SAMPLE_CAP_MS = 4 * FAST_CALL_MS;

/** When one kind of call may run on this thread (see the module doc). */
class InlineGate {
  #averageMs = 0;
  #slowUntil = 0;

  /** The time the call may start here, or `undefined`: the `*Init` started at `t0`. */
  open(t0: number): number | undefined {
    const t1 = performance.now();
    return t1 - t0 < FAST_CALL_MS && t1 >= this.#slowUntil ? t1 : undefined;
  }

  /** Notes the end of a call that started here at `t1`; returns the time. */
  ran(t1: number): number {
    const t2 = performance.now();
    const sample = Math.min(t2 - t1, SAMPLE_CAP_MS);
    this.#averageMs += (sample - this.#averageMs) * WEIGHT;
    if (this.#averageMs >= FAST_CALL_MS) this.#slowUntil = t2 + SLOW_CALL_HOLD_MS;
    return t2;
  }
}

/**
 * `step` with its call run on this thread while the module proves fast,
 * else on libuv's thread pool. Each bytes call made by this function has
 * its own gate: make one per handle.
 */
export function inlineWhenFast(step: keyof typeof STEPS): BytesCall {
  const [initName, name] = STEPS[step];
  const gate = new InlineGate();
  return (session, mechanism, key, input, outLength, out) => {
    const { pkcs11 } = session.module;
    const handle = session.handle;
    const t0 = performance.now();
    init(pkcs11, initName, handle, mechanism, key);
    const output = out ?? new Uint8Array(outLength);
    const t1 = gate.open(t0);
    if (t1 === undefined) return callAsync(session, handle, name, input, output);
    let length = 0, failure: unknown;
    try {
      length = NATIVE[name].call(pkcs11, handle, nonNull(input), output);
    } catch (error) {
      failure = toHsmError(error, name);
    }
    const starved = turns.starved(gate.ran(t1));
    if (starved === undefined) {
      return failure === undefined
        ? Promise.resolve(filled(output, length))
        : Promise.reject(failure);
    }
    return starved.then(() => {
      if (failure !== undefined) throw failure;
      return filled(output, length);
    });
  };
}
