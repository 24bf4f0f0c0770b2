/**
 * The service's log: one JSON object per line on stderr, so people can read
 * it and machines can parse it. Callers pass fields explicitly; nothing logs
 * a whole config or request object, which is how secrets leak into logs.
 *
 * @module
 */

/** Severity of a log line. */
export type LogLevel = "debug" | "info" | "warn" | "error";

/** Writes one log line: a level, a short message and flat fields. */
export type Logger = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

/** A {@link Logger} that writes JSON lines to stderr, skipping levels below `minLevel`. */
export function jsonLogger(minLevel: LogLevel = "info"): Logger {
  const order: LogLevel[] = ["debug", "info", "warn", "error"];
  const min = order.indexOf(minLevel);
  const encoder = new TextEncoder();
  return (level, message, fields = {}) => {
    if (order.indexOf(level) < min) return;
    const line = JSON.stringify({ time: new Date().toISOString(), level, message, ...fields });
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  };
}

/** The message of an error and its causes, joined: what a log line needs, without stacks. */
export function errorText(error: unknown): string {
  const parts: string[] = [];
  let e: unknown = error;
  for (let depth = 0; e !== undefined && depth < 5; depth++) {
    parts.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(" <- caused by ");
}
