/**
 * postgres.js's array-type fetch (`fetch_types`, on by default): right after login the driver
 * runs a query of its own, before the opening's first statement, and nothing awaits its
 * promise. When that query fails (behind a PgBouncer whose server is down: "server login has
 * been failing"; or the opening is cut because it took too long), its rejection is unhandled,
 * which ends a Deno process.
 *
 * The driver rejects the opening's first statement in the same step with the very same error
 * object, and the adapter awaits that statement. So the opening marks that error
 * ({@link ownOpeningFailure}), and one `unhandledrejection` listener, added when this module
 * loads (before an application's own listeners, which then see the event as handled), marks a
 * rejection with a marked reason handled: it was reported to the pool already. Nothing else is
 * touched, and the mark is on the error itself, not in state shared between pools.
 *
 * @module
 */

const OPENING_FAILURE = Symbol("poolkit.postgres.openingFailure");

/** Marks `error`, the failure of an opening's first statement, as reported (see the module). */
export function ownOpeningFailure(error: unknown): void {
  if (error === null || typeof error !== "object" || !Object.isExtensible(error)) return;
  Object.defineProperty(error, OPENING_FAILURE, { value: true });
}

globalThis.addEventListener("unhandledrejection", (event) => {
  const reason = event.reason;
  if (reason !== null && typeof reason === "object" && OPENING_FAILURE in reason) {
    event.preventDefault();
  }
});
