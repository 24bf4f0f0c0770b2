import type { Clock } from "./clock.ts";
import { hookTimeoutError } from "./errors.ts";

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
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  const expire = () => {
    const error = hookTimeoutError(hook, ms);
    controller.abort(error);
    reject(error);
  };
  const timer = ms === Infinity ? undefined : clock.setTimeout(expire, ms, background);
  const onParentAbort = () => {
    controller.abort(parent!.reason);
    reject(parent!.reason);
  };
  if (parent?.aborted) reject(parent.reason);
  else parent?.addEventListener("abort", onParentAbort, { once: true });
  const settled = () => {
    clock.clearTimeout(timer);
    parent?.removeEventListener("abort", onParentAbort);
  };
  Promise.resolve(running).then(
    (value) => (settled(), resolve(value)),
    (error) => (settled(), reject(error)),
  );
  return promise;
}
