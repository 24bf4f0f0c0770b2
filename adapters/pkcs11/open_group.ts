/**
 * {@link openGroup}: the members of a new handle, opened and checked: each
 * module loaded and each token found, no token twice, no name twice, and
 * each logged in (in a group, a member that can not log in starts out of
 * rotation; a handle on one token fails as it always did).
 *
 * @module
 */
import { CLOCK, systemClock } from "../../pool/clock.ts";
import { HsmError, isLoginRefusal } from "./errors.ts";
import { Group } from "./group.ts";
import { Member } from "./member.ts";
import {
  failoverSettings,
  type MemberConfig,
  memberConfigs,
  type OpenHsmInternals,
  type OpenHsmOptions,
} from "./options.ts";

/** Opens each member and checks that they are distinct tokens; logs each in. */
export function openGroup(options: OpenHsmOptions): Group {
  const configs = memberConfigs(options);
  const failover = failoverSettings(options.failover);
  const single = configs.length === 1;
  const settings = {
    pool: options.pool,
    keyCacheMs: options.keyCacheMs ?? 1000,
    callTimeoutMs: single ? undefined : failover.callTimeoutMs,
    keepLoginFailure: !single,
  };
  const members: Member[] = [];
  try {
    for (const [i, config] of configs.entries()) {
      try {
        members.push(new Member(config, settings));
      } catch (error) {
        throw single ? error : memberError(i, config, error);
      }
    }
    checkDistinct(members);
    if (!single) checkSomeLoggedIn(members);
  } catch (error) {
    for (const member of members) member.abandon();
    throw error;
  }
  const group = new Group(members, failover, (options as OpenHsmInternals)[CLOCK] ?? systemClock);
  for (const seat of group.seats) {
    const failure = seat.member.loginFailure;
    if (failure === undefined) continue;
    group.setOut(seat, (failure as Error).message, !isLoginRefusal(failure));
  }
  return group;
}

function memberError(i: number, config: MemberConfig, error: unknown): Error {
  const which = config.name ?? config.tokenLabel ?? `slot ${config.slotId}`;
  const message = `openHsm: member ${i} ("${which}") could not be opened: ${
    (error as Error)?.message ?? error
  }`;
  if (error instanceof TypeError) return new TypeError(message, { cause: error });
  return new HsmError(message, { operation: "open", cause: error });
}

function checkDistinct(members: readonly Member[]): void {
  for (let i = 0; i < members.length; i++) {
    for (let j = 0; j < i; j++) {
      const [a, b] = [members[j], members[i]];
      if (a.library === b.library && a.serial === b.serial) {
        throw new TypeError(
          `openHsm: members ${j} and ${i} are the same token ("${a.tokenLabel}", serial ` +
            `${a.serial}, in ${a.library}): list each token once`,
        );
      }
      if (a.name === b.name) {
        throw new TypeError(
          `openHsm: members ${j} and ${i} are both named "${a.name}": give each member a ` +
            "distinct name",
        );
      }
    }
  }
}

/** Throws when no member logged in: the first PIN refusal when every member refused. */
function checkSomeLoggedIn(members: readonly Member[]): void {
  if (members.some((m) => m.loginFailure === undefined)) return;
  const refusals = members.map((m) => m.loginFailure).filter(isLoginRefusal);
  if (refusals.length === members.length) throw refusals[0];
  throw new HsmError(
    "openHsm: no member could log in: " +
      members.map((m) => `"${m.name}": ${(m.loginFailure as Error)?.message}`).join("; "),
    { operation: "C_Login", cause: members[0].loginFailure },
  );
}
