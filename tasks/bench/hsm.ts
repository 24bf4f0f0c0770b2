/**
 * `deno task bench hsm`: AES-GCM 1 KiB encrypt and ECDSA P-256 sign on
 * SoftHSM, 1 and 32 callers: the session pool (1, 2 and 4 sessions, default
 * configuration) vs hand-written pkcs11js `*Async` calls on as many sessions
 * vs a session opened and closed per operation vs the per-request pattern
 * vs raw pkcs11js in a synchronous loop on one session. Then the same two
 * operations at 32 callers behind the fault module set to stand in for a
 * network HSM (500 µs a crypto call, `tasks/setup/fault_module.ts`): the pool of 4
 * vs hand-written `*Async`. Then an HSM group at the same 500 µs: two
 * members (two tokens with the same keys) vs one, and two members of which
 * one fails with `CKR_DEVICE_REMOVED` halfway through each trial vs two
 * healthy ones, counting failed calls. Event-loop timer lateness is sampled
 * during every trial.
 *
 * @module
 */

import {
  type Benchmark,
  callersOf,
  type Contender,
  runCallers,
  type Scenario,
  type Trial,
} from "./benchmark.ts";
import {
  HAND_WRITTEN_MAX_SESSIONS,
  openHandWrittenAsync,
  openRawLoop,
  type Pkcs11js,
  type RawSetup,
} from "./hsm_raw.ts";
import {
  GROUP_FAILOVER,
  GROUP_ONE,
  GROUP_TWO,
  HAND_WRITTEN,
  hsmTargets,
  RAW_LOOP,
} from "./targets.ts";

type Adapter = typeof import("../../adapters/pkcs11/mod.ts");
type HsmKey = import("../../adapters/pkcs11/mod.ts").HsmKey;
type HsmSession = import("../../adapters/pkcs11/mod.ts").HsmSession;
type GroupMember = import("../setup/token_group.ts").GroupMember;
type SlotFaults = import("../setup/fault_module.ts").SlotFaults;

/** An HSM scenario: which operation, how many callers, on which module. */
export interface HsmScenario extends Scenario {
  /** The operation. */
  op: "aes" | "ecdsa";
  /** Behind the fault module at a network HSM's 500 µs per crypto call, not SoftHSM itself. */
  slow?: boolean;
  /** An HSM group's row: two members vs one (`spread`), or one failing halfway (`failover`). */
  group?: "spread" | "failover";
}

/** The fault module's wait per crypto call, in µs (a network HSM's round trip). */
const SLOW_US = 500;

const AES_LABEL = "bench-aes";
const EC_LABEL = "bench-ec";
const POOL_SIZES = [1, 2, 4] as const;

/** What `prepare` sets up: the adapter (loaded after pkcs11js is built) and the token. */
interface HsmEnv {
  adapter: Adapter;
  pkcs11js: Pkcs11js;
  library: string;
  /** The fault module in front of `library`, adding {@link SLOW_US} per crypto call. */
  slowLibrary: string;
  tokenLabel: string;
  pin: string;
  payload: Uint8Array;
  /** The group's two members (tokens with the same keys) behind the fault module. */
  members: readonly GroupMember[];
  /** The label of the AES key both members hold. */
  groupAesLabel: string;
  /** The fault settings of the second member's slot. */
  secondMember: SlotFaults;
}
let env: HsmEnv | undefined;
const need = (): HsmEnv => {
  if (!env) throw new Error("the token is not prepared");
  return env;
};

const keyLabel = (op: "aes" | "ecdsa") => (op === "aes" ? AES_LABEL : EC_LABEL);
const keyKind = (op: "aes" | "ecdsa") => (op === "aes" ? "aes" as const : "ec-private" as const);

/** The benchmark's token key for `op`, found by label in `session`. */
function findKey(session: HsmSession, op: "aes" | "ecdsa"): HsmKey {
  const key = session.findRandomKey(keyLabel(op), keyKind(op));
  if (!key) throw new Error(`no ${keyKind(op)} key labelled ${keyLabel(op)} on the token`);
  return key;
}

function sessionOp(session: HsmSession, key: HsmKey, op: "aes" | "ecdsa", data: Uint8Array) {
  return op === "aes" ? session.encrypt(key, data) : session.sign(key, data);
}

/** Our pool of `size` sessions in its default configuration. */
function pooled(size: number): Contender {
  return {
    name: `pool default ×${size}`,
    description: `this package's \`openHsm({ pool: { max: ${size} } })\`, ` +
      "each op through `hsm.ops.encrypt`/`hsm.ops.sign`.",
    ours: true,
    async open(s) {
      const { adapter, tokenLabel, pin, payload } = need();
      const { op, concurrency } = s as HsmScenario;
      const hsm = await adapter.openHsm({
        library: libraryFor(s),
        tokenLabel,
        pin,
        pool: { max: size, min: size },
      });
      const close = () => hsm.close();
      let key: HsmKey;
      try {
        key = await hsm.use((session) => findKey(session, op));
      } catch (error) {
        await close();
        throw error;
      }
      const run = op === "aes"
        ? () => hsm.ops.encrypt(key, payload)
        : () => hsm.ops.sign(key, payload);
      return callersOf(concurrency, run, close, { warmUp: size * 8 });
    },
  };
}

/** The module a scenario runs on. */
function libraryFor(s: Scenario): string {
  const { library, slowLibrary } = need();
  return (s as HsmScenario).slow ? slowLibrary : library;
}

/** A session opened and closed per operation. */
const sessionPerOp: Contender = {
  name: "session per op",
  description: "module initialised and token logged in once, but a session opened and closed " +
    "for every operation (the adapter with `maxIdle: 0`).",
  ours: false,
  async open(s) {
    const { adapter, tokenLabel, pin, payload } = need();
    const { op, concurrency } = s as HsmScenario;
    const hsm = await adapter.openHsm({
      tokenLabel,
      pin,
      pool: { max: Math.max(concurrency, 1), maxIdle: 0 },
    });
    const key = await hsm.use((session) => findKey(session, op));
    const run = () => hsm.use((session) => sessionOp(session, key, op, payload));
    return callersOf(concurrency, run, () => hsm.close(), { warmUp: 1 });
  },
};

/** The per-request pattern. */
const perRequest: Contender = {
  name: "per-request",
  description: "every operation loads and initialises the module, opens a session, logs in, " +
    "finds the key, operates, logs out, closes, finalises (`withPerRequestSession`); " +
    "serialised, since module init and login are process-wide.",
  ours: false,
  async open(s) {
    const { tokenLabel, pin, payload } = need();
    const { op, concurrency } = s as HsmScenario;
    // Loaded here, after prepare() built pkcs11js: it loads the adapter.
    const { withPerRequestSession } = await import("./hsm_per_request.ts");
    const run = () =>
      withPerRequestSession(
        { tokenLabel, pin },
        (session) => sessionOp(session, findKey(session, op), op, payload),
      );
    return callersOf(concurrency, run, undefined, { warmUp: 1 });
  },
};

/** What the raw pkcs11js contenders need for `op`. */
function rawSetup(op: "aes" | "ecdsa", library = need().library): RawSetup {
  const { pkcs11js, tokenLabel, pin, payload } = need();
  return { pkcs11js, library, tokenLabel, pin, op, keyLabel: keyLabel(op), payload };
}

/** Hand-written pkcs11js `*Async` calls, one loop per session (see `hsm_raw.ts`). */
const handWrittenAsync: Contender = {
  name: HAND_WRITTEN,
  description: "raw pkcs11js without a pool, written by hand: one session per caller up to " +
    `${HAND_WRITTEN_MAX_SESSIONS} (1 with 1 caller, ${HAND_WRITTEN_MAX_SESSIONS} with 32), ` +
    "each driven by its own loop of `C_EncryptInit`/`C_SignInit` then `await " +
    "C_EncryptAsync`/`C_SignAsync`.",
  ours: false,
  open(s) {
    const { op, concurrency } = s as HsmScenario;
    return openHandWrittenAsync(rawSetup(op, libraryFor(s)), concurrency);
  },
};

/** Raw pkcs11js on one session in a synchronous loop. */
const rawLoop: Contender = {
  name: RAW_LOOP,
  description: "raw pkcs11js, one session, synchronous calls in a tight loop on the main " +
    "thread (the single-session limit; one caller whatever the scenario; blocks the event loop).",
  ours: false,
  open(s) {
    return Promise.resolve(openRawLoop(rawSetup((s as HsmScenario).op)));
  },
};

/** How many sessions each member of a group row keeps (the default pool). */
const GROUP_SESSIONS = 4;

/**
 * A handle on the group's first member alone (`members: 1`) or on both, each member with the
 * default pool of {@link GROUP_SESSIONS}, calls by label (`hsm.encrypt`, safe to repeat). With
 * `failHalfway`, the second member answers `CKR_DEVICE_REMOVED` from the middle of each trial
 * on, and failed calls are counted instead of ending the trial.
 */
function grouped(name: string, members: 1 | 2, failHalfway: boolean): Contender {
  const what = members === 1 ? "one member" : "two members";
  return {
    name,
    description: `this package's \`openHsm\` on ${what} of an HSM group (tokens with the same ` +
      `keys behind the fault module at ${SLOW_US} µs a crypto call), \`pool: { max: ` +
      `${GROUP_SESSIONS} }\` each, \`hsm.encrypt(label, ...)\`` +
      (failHalfway
        ? "; the second member fails with CKR_DEVICE_REMOVED from the middle of each trial " +
          "(failed calls counted)."
        : "."),
    ours: true,
    async open(s) {
      const env = need();
      env.secondMember.set({}); // healthy again after the last trial
      const pool = { max: GROUP_SESSIONS, min: GROUP_SESSIONS };
      const [first] = env.members;
      const hsm = members === 1
        ? await env.adapter.openHsm({
          library: first.library,
          tokenLabel: first.tokenLabel,
          pin: first.pin,
          pool,
        })
        : await env.adapter.openHsm({ members: env.members.map(pick), pin: env.pin, pool });
      const run = () => hsm.encrypt(env.groupAesLabel, env.payload);
      const close = async () => {
        env.secondMember.set({});
        await hsm.close();
      };
      const warm = await callersOf(s.concurrency, run, close, { warmUp: GROUP_SESSIONS * 8 });
      if (!failHalfway) return warm;
      return {
        close,
        async trial(durationMs): Promise<Trial> {
          let failures = 0;
          const counted = () => run().then(() => {}, () => void failures++);
          const fail = setTimeout(
            () => env.secondMember.set({ fail: CKR_DEVICE_REMOVED }),
            durationMs / 2,
          );
          try {
            return { ...await runCallers(s.concurrency, durationMs, counted, true), failures };
          } finally {
            clearTimeout(fail);
          }
        },
      };
    },
  };
}

/** A member's token, as `openHsm` takes it (its PIN apart). */
const pick = (m: GroupMember) => ({ name: m.name, library: m.library, tokenLabel: m.tokenLabel });

const CKR_DEVICE_REMOVED = 0x32;
const groupOne = grouped(GROUP_ONE, 1, false);
const groupTwo = grouped(GROUP_TWO, 2, false);
const groupFailover = grouped(GROUP_FAILOVER, 2, true);

const what = (op: "aes" | "ecdsa") => op === "aes" ? "AES-GCM 1 KiB encrypt" : "ECDSA P-256 sign";

/** AES-GCM and ECDSA: 1 and 32 callers on SoftHSM, 32 callers behind the slow module. */
const scenarios: HsmScenario[] = (["aes", "ecdsa"] as const).flatMap((op): HsmScenario[] => [
  ...[1, 32].map((c) => ({
    id: `${op}-c${c}`,
    label: `${what(op)}, ${c} caller${c === 1 ? "" : "s"}`,
    concurrency: c,
    op,
  })),
  {
    id: `${op}-slow-c32`,
    label: `${what(op)}, 32 callers, slow module (${SLOW_US} µs a call)`,
    concurrency: 32,
    op,
    slow: true,
  },
]).concat([
  {
    id: "aes-group-c32",
    label: `${what("aes")}, 32 callers, HSM group (${SLOW_US} µs a call)`,
    concurrency: 32,
    op: "aes",
    slow: true,
    group: "spread",
  },
  {
    id: "aes-failover-c32",
    label: `${what("aes")}, 32 callers, HSM group, one member fails halfway`,
    concurrency: 32,
    op: "aes",
    slow: true,
    group: "failover",
  },
]);

const defaultPool = pooled(HAND_WRITTEN_MAX_SESSIONS);
const allContenders = [
  ...POOL_SIZES.map((n) => n === HAND_WRITTEN_MAX_SESSIONS ? defaultPool : pooled(n)),
  handWrittenAsync,
  sessionPerOp,
  perRequest,
  rawLoop,
  groupOne,
  groupTwo,
  groupFailover,
];

/** The HSM benchmark. */
export const hsmBenchmark: Benchmark = {
  id: "hsm",
  title: "HSM on SoftHSM2: AES-GCM 1 KiB and ECDSA P-256",
  measures:
    "Measures ops/s, p50/p99 latency and event-loop timer lateness of AES-GCM 1 KiB encrypt and ECDSA P-256 sign, 1 and 32 callers.",
  primary: "opsPerSec",
  monitorsEventLoop: true,
  // Per-request code initialises and finalises the module: nothing else may hold it meanwhile.
  lifetime: "trial",
  scenarios,
  contenders: allContenders,
  // Behind the slow module: the pool and its peer only. BENCH_HSM_ONLY=name,name runs a subset.
  contendersFor: (s) => {
    const only = Deno.env.get("BENCH_HSM_ONLY")?.split(",");
    const { slow, group } = s as HsmScenario;
    const all = group === "spread"
      ? [groupOne, groupTwo]
      : group === "failover"
      ? [groupTwo, groupFailover]
      : slow
      ? [defaultPool, handWrittenAsync]
      : allContenders.filter((c) => ![groupOne, groupTwo, groupFailover].includes(c));
    return only ? all.filter((c) => only.includes(c.name)) : all;
  },
  targets: hsmTargets(),
  ratioBaselines: [HAND_WRITTEN, RAW_LOOP, "per-request"],
  notes: [],
  async prepare() {
    const { ensurePkcs11js } = await import("../setup/pkcs11js.ts");
    await ensurePkcs11js();
    // One SoftHSM2 configuration per process: the group's, whose first token serves the rest.
    const { provisionTokenGroup } = await import("../setup/token_group.ts");
    const group = await provisionTokenGroup({ tokens: 2, withFaults: true });
    const softhsm = group.env;
    const slow = group.faults!;
    slow.set({ delayUs: SLOW_US });
    try {
      const adapter: Adapter = await import("../../adapters/pkcs11/mod.ts");
      const loaded = await import("pkcs11js");
      const pkcs11js = ((loaded as { default?: unknown }).default ?? loaded) as Pkcs11js;
      {
        // Token keys (the per-request code must find them again after every finalise).
        await using hsm = await adapter.openHsm({
          tokenLabel: softhsm.tokenLabel,
          pin: softhsm.pin,
          pool: { max: 1 },
        });
        await hsm.use(async (s) => {
          await s.generateAesKey({ label: AES_LABEL });
          await s.generateEcKeyPair({ label: EC_LABEL });
        });
      }
      env = {
        adapter,
        pkcs11js,
        library: softhsm.library,
        slowLibrary: slow.library,
        tokenLabel: softhsm.tokenLabel,
        pin: softhsm.pin,
        payload: crypto.getRandomValues(new Uint8Array(1024)),
        members: group.members,
        groupAesLabel: group.keys.aes.label,
        secondMember: group.tokens[1].faults!,
      };
      hsmBenchmark.notes!.push(
        `SoftHSM2 (${softhsm.library}), a private temporary token; keys are token objects ` +
          "found by label, the same for every contender.",
        "The HSM group rows run on two tokens of that SoftHSM2 holding the same imported AES " +
          "key, behind the fault module; the second member's failure starts at half of each " +
          "trial and is healed before the next, so each trial opens a healthy group.",
        "Every contender is opened just before each of its trials and closed after it, since " +
          "per-request code initialises and finalises the module.",
      );
    } catch (error) {
      await group[Symbol.asyncDispose]();
      throw error;
    }
    return async () => {
      env = undefined;
      await group[Symbol.asyncDispose]();
    };
  },
};
