/**
 * Cleanups that must run however a setup helper's process ends: on SIGINT/SIGTERM/SIGHUP, on an
 * uncaught error, or at exit. Shared by the PostgreSQL and PgBouncer helpers.
 *
 * @module
 */

/** A TCP port nobody listens on right now (the OS picks it; we release it at once). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A cleanup that must run even when the process is interrupted. */
interface Guard {
  cleanup: () => Promise<void>;
  cleanupSync?: () => void;
}

const guards = new Set<Guard>();
let listening = false;

/** The signals that end a run, and the exit code a shell expects after each. */
const EXIT_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
type EndSignal = keyof typeof EXIT_CODES;

function onSignal(signal: EndSignal): void {
  const pending = [...guards];
  guards.clear();
  // Give the graceful cleanups a few seconds, then fall back to the synchronous ones.
  const timeout = new Promise((r) => setTimeout(r, 10_000));
  Promise.race([Promise.allSettled(pending.map((g) => g.cleanup())), timeout]).finally(() => {
    for (const g of pending) g.cleanupSync?.();
    Deno.exit(EXIT_CODES[signal]);
  });
}
const handlers = Object.fromEntries(
  Object.keys(EXIT_CODES).map((s) => [s, () => onSignal(s as EndSignal)]),
) as Record<EndSignal, () => void>;
const onUnload = () => {
  for (const g of guards) g.cleanupSync?.();
  guards.clear();
};
// An uncaught error ends the process without an `unload` event. Nothing later can run, so clean
// up synchronously now, unless a listener before us has already handled the error.
const onFatal = (event: Event) => {
  if (!event.defaultPrevented) onUnload();
};

/**
 * Runs `cleanup` if the process gets SIGINT/SIGTERM/SIGHUP (then exits 130/143/129), and
 * `cleanupSync` if it exits without calling the returned `release` first. Call `release()` once
 * you have cleaned up yourself. Shared by the PostgreSQL and PgBouncer helpers.
 */
export function onInterrupt(cleanup: () => Promise<void>, cleanupSync?: () => void): () => void {
  const guard: Guard = { cleanup, cleanupSync };
  guards.add(guard);
  if (!listening) listen(true);
  return () => {
    guards.delete(guard);
    if (guards.size === 0 && listening) listen(false);
  };
}

/** Starts (or stops) listening for every way the process can end. */
function listen(on: boolean): void {
  listening = on;
  for (const [signal, handler] of Object.entries(handlers)) {
    if (on) Deno.addSignalListener(signal as EndSignal, handler);
    else Deno.removeSignalListener(signal as EndSignal, handler);
  }
  const events = { unload: onUnload, error: onFatal, unhandledrejection: onFatal };
  for (const [type, listener] of Object.entries(events)) {
    if (on) globalThis.addEventListener(type, listener as EventListener);
    else globalThis.removeEventListener(type, listener as EventListener);
  }
}
