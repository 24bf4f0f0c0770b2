/**
 * Graceful shutdown on SIGINT and SIGTERM.
 *
 * One operator action often delivers the same signal twice: Ctrl-C in a
 * terminal, or SIGTERM to the process group (systemd's default), reaches the
 * service directly *and* through the `deno task` runner, which forwards it.
 * The copies arrive within a millisecond of each other. So every signal
 * within {@link DUPLICATE_SIGNAL_WINDOW_MS} of the first is the same request
 * to drain; only a signal after that window, a separate action, means "exit
 * now". (POSIX gives no portable way to see a signal's sender from Deno, so
 * time is what tells the copies apart.)
 *
 * @module
 */

import type { Logger } from "./log.ts";

const SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * Signals this soon after the first one are copies of it (group delivery
 * plus the runner's forward), not an operator's second request. Wide enough
 * for a forward on a loaded machine, short enough that a second Ctrl-C a
 * person presses after seeing "shutting down" is taken as "exit now".
 */
export const DUPLICATE_SIGNAL_WINDOW_MS = 1000;

/** The shutdown states: nothing received, draining since `at`. */
type SignalState = { kind: "running" } | { kind: "draining"; at: number };

/**
 * Calls `shutdown` on the first SIGINT/SIGTERM, ignores copies within
 * {@link DUPLICATE_SIGNAL_WINDOW_MS}, and exits with status 130 on a later
 * one. Returns a function that removes the listeners (the listeners keep
 * the process alive, so remove them once the service has stopped).
 */
export function shutdownOnSignals(
  shutdown: (reason: string) => Promise<void>,
  log: Logger,
): () => void {
  let state: SignalState = { kind: "running" };
  const onSignal = (signal: Deno.Signal) => () => {
    const at = performance.now();
    if (state.kind === "draining") {
      if (at - state.at < DUPLICATE_SIGNAL_WINDOW_MS) {
        log("debug", "copy of the shutdown signal ignored", { signal });
        return;
      }
      log("warn", "second signal: exiting without waiting for requests in flight", { signal });
      Deno.exit(130);
    }
    state = { kind: "draining", at };
    log("info", "signal received: draining; signal again after 1 s to exit at once", {
      signal,
    });
    shutdown(`received ${signal}`).catch((error) => {
      log("error", "shutdown failed", { error: String(error) });
      Deno.exitCode = 1;
    });
  };
  const listeners = SIGNALS.map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, listener] of listeners) Deno.addSignalListener(signal, listener);
  return () => {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  };
}
