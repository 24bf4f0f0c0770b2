/**
 * Graceful shutdown on SIGINT and SIGTERM: the first signal starts the
 * service's shutdown (stop accepting, finish requests in flight, close the
 * pools); a second one exits at once, for an operator who does not want to
 * wait.
 *
 * @module
 */

import type { Logger } from "./log.ts";

const SIGNALS: readonly Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * Calls `shutdown` on the first SIGINT/SIGTERM and exits with status 130 on
 * a second. Returns a function that removes the listeners (the listeners
 * keep the process alive, so remove them once the service has stopped).
 */
export function shutdownOnSignals(
  shutdown: (reason: string) => Promise<void>,
  log: Logger,
): () => void {
  let received = false;
  const onSignal = (signal: Deno.Signal) => () => {
    if (received) {
      log("warn", "second signal: exiting without waiting", { signal });
      Deno.exit(130);
    }
    received = true;
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
