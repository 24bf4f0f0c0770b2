/**
 * {@link CallPlace}: where a handle's crypto calls run, by one rule
 * (`docs/pkcs11.md`): on this thread while the module is fast, as SoftHSM
 * is (a hand-off to another thread costs more than its call); on the
 * session's own worker thread once the handle's calls take
 * {@link SLOW_CALL_MS} or more on average, as a network HSM's do: the call
 * waits on the wire there, the event loop keeps turning, and the caller's
 * deadline can end its wait. The switch holds for the handle's life. Calls
 * run here answer at once, so when the event loop has not turned for
 * {@link TURN_BUDGET_MS}, a result waits for its next turn.
 *
 * This file is also the worker's entry point (under `import.meta.main`).
 *
 * @module
 */
import { setImmediate } from "node:timers";
import type pkcs11jsTypes from "pkcs11js";
import { PoolTimeoutError } from "../../mod.ts";
import { HsmError } from "./errors.ts";
import { pkcs11js } from "./module.ts";
import { CRYPTO, type CryptoOp } from "./ops.ts";

/** Calls that take this long on average move the handle's calls to worker threads. */
export const SLOW_CALL_MS = 0.5;
/** How long calls run here may keep the event loop from turning. */
export const TURN_BUDGET_MS = 1;
/** A call's weight in the moving average, and the most one call counts for. */
const WEIGHT = 1 / 16, SAMPLE_CAP_MS = 1;

/** The arguments of a crypto operation after `(pkcs11, session)`. */
export type CryptoArgs<K extends CryptoOp> = Parameters<(typeof CRYPTO)[K]> extends
  [unknown, unknown, ...infer A] ? A : never;
/** What a crypto operation returns. */
export type CryptoResult<K extends CryptoOp> = ReturnType<(typeof CRYPTO)[K]>;

/** What bounds a call: the caller's signal, its `timeoutMs`, and when that runs out (`until`). */
export type Deadline = { signal?: AbortSignal; timeoutMs?: number; until?: number };

/**
 * Whether the event loop turned lately: a probe (`setImmediate`) is
 * scheduled when none is pending; while one has been pending longer than
 * {@link TURN_BUDGET_MS}, results wait for it. One event loop per thread,
 * so one record per thread.
 */
const turns = new (class LoopTurns {
  #next: Promise<void> | undefined;
  #since = 0;

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
})();

/** One crypto call: the binding here, the module's path (for a worker's binding), the session. */
export type Call<K extends CryptoOp> = {
  pkcs11: pkcs11jsTypes.PKCS11;
  library: string;
  session: Uint8Array;
  op: K;
  args: CryptoArgs<K>;
};

/** Where one handle's crypto calls run (see the module doc). */
export class CallPlace {
  #averageMs = 0;
  #threaded = false;
  readonly #threads = new Map<object, SessionThread>();
  readonly #deadlines = new WeakMap<object, Deadline>();

  /** Where calls run now. */
  get where(): "this thread" | "worker threads" {
    return this.#threaded ? "worker threads" : "this thread";
  }

  /** Sets (or clears) what bounds the calls of the session `owner` while a caller holds it. */
  bound(owner: object, deadline: Deadline | undefined): void {
    if (deadline === undefined) this.#deadlines.delete(owner);
    else this.#deadlines.set(owner, deadline);
  }

  /** What bounds the calls of `owner` now. */
  deadline(owner: object): Deadline | undefined {
    return this.#deadlines.get(owner);
  }

  /** Runs `call` for the session `owner`, here or on its thread, within `deadline`. */
  run<K extends CryptoOp>(
    owner: object,
    call: Call<K>,
    deadline: Deadline | undefined,
  ): Promise<CryptoResult<K>> {
    if (this.#threaded) return this.#onThread(owner, call, deadline);
    const fn = CRYPTO[call.op] as (...a: unknown[]) => CryptoResult<K>;
    const t0 = performance.now();
    let value: CryptoResult<K> | undefined, failure: unknown;
    try {
      value = fn(call.pkcs11, call.session, ...call.args);
    } catch (error) {
      failure = error ?? new Error("undefined thrown");
    }
    const t1 = performance.now();
    this.#averageMs += (Math.min(t1 - t0, SAMPLE_CAP_MS) - this.#averageMs) * WEIGHT;
    if (this.#averageMs >= SLOW_CALL_MS) this.#threaded = true;
    const starved = turns.starved(t1);
    if (starved === undefined) {
      return failure === undefined ? Promise.resolve(value!) : Promise.reject(failure);
    }
    return starved.then(() => {
      if (failure !== undefined) throw failure;
      return value!;
    });
  }

  /** Runs `call` on the thread of `owner`, whatever the rule says (a probe of a module that may hang). */
  runOnThread<K extends CryptoOp>(
    owner: object,
    call: Call<K>,
    deadline: Deadline | undefined,
  ): Promise<CryptoResult<K>> {
    return this.#onThread(owner, call, deadline);
  }

  #onThread<K extends CryptoOp>(
    owner: object,
    call: Call<K>,
    deadline: Deadline | undefined,
  ): Promise<CryptoResult<K>> {
    let thread = this.#threads.get(owner);
    if (thread === undefined) this.#threads.set(owner, thread = new SessionThread(call.library));
    if (deadline === undefined || (deadline.signal === undefined && deadline.until === undefined)) {
      return thread.call(call);
    }
    const { signal, until } = deadline;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const left = until === undefined ? undefined : until - performance.now();
    if (left !== undefined && left <= 0) return Promise.reject(timedOut(call.op, deadline));
    const { promise, resolve, reject } = Promise.withResolvers<CryptoResult<K>>();
    const onAbort = () => {
      done();
      reject(signal!.reason);
    };
    const timer = left === undefined ? undefined : setTimeout(() => {
      done();
      reject(timedOut(call.op, deadline));
    }, left);
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    thread.call(call).then((value) => {
      done();
      resolve(value);
    }, (error) => {
      done();
      reject(error);
    });
    return promise;
  }

  /**
   * `undefined` when no call of `owner` runs on its thread, else a promise
   * that resolves once none does (a stuck call keeps its session in use).
   */
  busy(owner: object): Promise<void> | undefined {
    return this.#threads.get(owner)?.idle();
  }

  /** Ends the thread of `owner`, if it has one (its session is closed). */
  forget(owner: object): void {
    this.#threads.get(owner)?.close();
    this.#threads.delete(owner);
  }
}

function timedOut(op: string, deadline: Deadline): PoolTimeoutError {
  const ms = deadline.timeoutMs ?? 0;
  return new PoolTimeoutError(
    `the HSM did not answer ${op} within the call's ${ms} ms (timeoutMs); its session stays ` +
      "out of use until the HSM answers",
    ms,
  );
}

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/** One session's worker thread. */
class SessionThread {
  readonly #worker: Worker;
  readonly #ready: Promise<void>;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #broken: Error | undefined;
  #idle: (() => void)[] = [];

  constructor(library: string) {
    this.#worker = new Worker(import.meta.url, { type: "module" });
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#ready = promise;
    this.#worker.onmessage = ({ data }) => {
      if (data.ready) return resolve();
      const pending = this.#pending.get(data.id)!;
      this.#pending.delete(data.id);
      if (data.error === undefined) pending.resolve(data.value);
      else {
        const { message, operation, code } = data.error;
        pending.reject(new HsmError(message, { operation, code }));
      }
      if (this.#pending.size === 0) { for (const wake of this.#idle.splice(0)) wake(); }
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#fail(
        new HsmError("an HSM worker thread failed", {
          operation: "thread",
          cause: event.error ?? event.message,
        }),
      );
      resolve();
    };
    this.#worker.postMessage({ library });
  }

  async call<K extends CryptoOp>(call: Call<K>): Promise<CryptoResult<K>> {
    const id = this.#next++;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    this.#pending.set(id, { resolve, reject });
    promise.catch(() => {}); // closed before the thread was ready: awaited below, not unhandled
    await this.#ready;
    if (this.#broken) this.#fail(this.#broken);
    else this.#worker.postMessage({ id, op: call.op, session: call.session, args: call.args });
    return await promise as CryptoResult<K>;
  }

  idle(): Promise<void> | undefined {
    if (this.#pending.size === 0) return undefined;
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #fail(error: Error): void {
    this.#broken ??= error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    for (const wake of this.#idle.splice(0)) wake();
  }

  close(): void {
    this.#worker.terminate();
    this.#fail(new HsmError("the session is closed", { operation: "session" }));
  }
}

// The worker: its own binding, attached to the module the main thread initialised.
if (import.meta.main && "WorkerGlobalScope" in globalThis) {
  let binding: pkcs11jsTypes.PKCS11 | undefined;
  const scope = globalThis as unknown as {
    onmessage: (event: MessageEvent) => void;
    postMessage(message: unknown, transfer?: Transferable[]): void;
  };
  scope.onmessage = ({ data }) => {
    if (binding === undefined) {
      binding = new pkcs11js.PKCS11();
      binding.load(data.library);
      try {
        binding.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
        binding.C_Finalize(); // it was not initialised: never own it from here
      } catch {
        // CKR_CRYPTOKI_ALREADY_INITIALIZED: attached, as expected.
      }
      return scope.postMessage({ ready: true });
    }
    const fn = CRYPTO[data.op as CryptoOp] as (...a: unknown[]) => unknown;
    try {
      const value = fn(binding, data.session, ...data.args);
      scope.postMessage({ id: data.id, value });
    } catch (error) {
      const e = error as HsmError;
      scope.postMessage({
        id: data.id,
        error: { message: String(e?.message), operation: e?.operation ?? data.op, code: e?.code },
      });
    }
  };
}
