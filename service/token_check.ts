/**
 * Does the token answer? A key lookup that finds nothing means "no such key"
 * only if the token could be read: SoftHSM whose storage vanished answers
 * every `C_FindObjects` with an empty list, and a client told 404 stops
 * retrying. So before a 404 the service asks the token for its info
 * (`C_GetTokenInfo` reaches the token itself; `C_GetSessionInfo` answers
 * from the session table even when the token is gone), and `/healthz` asks
 * the same question.
 *
 * @module
 */

import type { AcquireOptions } from "../mod.ts";
import type { HsmSession } from "../adapters/pkcs11/mod.ts";

/** What the check needs: the HSM handle's `use()`. */
export interface SessionSource {
  /** Runs `fn` with a pooled session, released (or discarded) afterwards. */
  use<T>(
    fn: (session: HsmSession, signal: AbortSignal) => T | Promise<T>,
    options?: AcquireOptions,
  ): Promise<T>;
}

/** Asks the token itself for its info; throws what the module threw. */
export function pingToken(session: HsmSession): void {
  session.module.pkcs11.C_GetTokenInfo(session.slot);
}

/**
 * Why the token cannot be read now (the module's error), or `undefined`
 * when it answers. Errors of getting a session (pool timeout, open breaker,
 * shutdown) are thrown as they are, so callers map them as usual.
 */
export async function tokenProblem(
  sessions: SessionSource,
  options?: AcquireOptions,
): Promise<unknown> {
  let problem: unknown;
  try {
    await sessions.use((session) => {
      try {
        pingToken(session);
      } catch (error) {
        problem = error;
        throw error; // the pool decides whether the session survives it
      }
    }, options);
  } catch (error) {
    if (problem === undefined) throw error;
  }
  return problem;
}
