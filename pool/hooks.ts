import type { Clock } from "./clock.ts";
import { hookTimeoutError } from "./errors.ts";

/**
 * Calls a factory hook and bounds how long anyone waits for it: past `ms`
 * the returned promise rejects with a `PoolTimeoutError` naming the hook,
 * and `signal` (if the hook takes one) aborts with it, even if the hook
 * itself never settles. When `parent` aborts (the pool closes) it rejects
 * at once with its reason. A hook that throws synchronously rejects too.
 * The deadline timer keeps the process alive (someone awaits the hook),
 * except for `background` work such as health checks.
 */
export function callHook<T>(
  clock: Clock,
  hook: string,
  ms: number,
  call: (signal: AbortSignal) => T | Promise<T>,
  parent?: AbortSignal,
  background = false,
): Promise<T> {
  const controller = new AbortController();
  const signal = parent === undefined
    ? controller.signal
    : AbortSignal.any([parent, controller.signal]);
  let running: Promise<T>;
  try {
    running = Promise.resolve(call(signal));
  } catch (error) {
    return Promise.reject(error);
  }
  if (ms === Infinity && parent === undefined) return running;
  const { promise, resolve, reject } = Promise.withResolvers<T>();
  const expire = () => {
    const error = hookTimeoutError(hook, ms);
    controller.abort(error);
    reject(error);
  };
  const timer = ms === Infinity ? undefined : clock.setTimeout(expire, ms, background);
  const onParentAbort = () => reject(parent!.reason);
  parent?.addEventListener("abort", onParentAbort, { once: true });
  const settled = () => {
    clock.clearTimeout(timer);
    parent?.removeEventListener("abort", onParentAbort);
  };
  running.then(
    (value) => (settled(), resolve(value)),
    (error) => (settled(), reject(error)),
  );
  return promise;
}
