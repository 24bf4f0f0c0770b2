/**
 * A real secret-manager service for tests: a fresh throwaway SoftHSM2 token
 * (tasks/setup/softhsm.ts), the service on an ephemeral port on it, and
 * every log line captured. Disposing shuts the service down and deletes the
 * token. The PIN is distinctive so tests can search for it in everything
 * the service says. {@link startGroupService} runs it on several tokens
 * holding the same keys, behind the fault module.
 */
import assert from "node:assert/strict";
import { provisionSoftHsm, type SoftHsm } from "../../tasks/setup/softhsm.ts";
import { openGroupFixture, type TokenGroup } from "../pkcs11/group_fixture.ts";
import { loadConfig, type ServiceConfig } from "../../service/config.ts";
import type { Logger } from "../../service/log.ts";
import { type Service, startService } from "../../service/server.ts";

/** The test token's user PIN: long and unusual, so a leak is unmistakable. */
export const TEST_PIN = "svc-Test-PIN-7f3a9c";

/** The key label the fixture creates. */
export const KEY_LABEL = "app";

/** A running service on a temp token. */
export interface TestService extends AsyncDisposable {
  /** The running service. */
  service: Service;
  /** The temp token it runs on. */
  softhsm: SoftHsm;
  /** The configuration it was started with. */
  config: ServiceConfig;
  /** Every log line, as written. */
  logs: string[];
  /** `fetch` relative to the service's URL. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** POSTs JSON and returns the status, headers and parsed body. */
  post(path: string, body: unknown): Promise<JsonReply>;
  /** GETs JSON. */
  get(path: string): Promise<JsonReply>;
  /** The HSM pool's entry in `/pool/stats`. */
  poolStats(): Promise<Record<string, unknown>>;
}

/** A response read to the end. */
export interface JsonReply {
  /** HTTP status. */
  status: number;
  /** Response headers. */
  headers: Headers;
  /** The body as text. */
  text: string;
  /** The body parsed as JSON (`undefined` when it is not JSON). */
  // deno-lint-ignore no-explicit-any
  body: any;
}

/** Starts a service on a fresh temp token; `flags` are command-line flags. */
export async function startTestService(
  flags: string[] = [],
  env: Record<string, string> = {},
): Promise<TestService> {
  const softhsm = await provisionSoftHsm({ temporary: true, pin: TEST_PIN });
  return await startOn(softhsm, () => softhsm[Symbol.asyncDispose](), [
    "--ensure-key",
    KEY_LABEL,
    ...flags,
  ], { ...softhsm.env, ...env });
}

/** A running service on an HSM group. */
export interface GroupService extends TestService {
  /** The tokens (`hsm-a`, `hsm-b`, ...) with their fault settings, and the keys they hold. */
  group: TokenGroup;
}

/**
 * Starts a service on `tokens` temp tokens holding the same keys (the AES key is labelled
 * `group.keys.aes.label`), one `--token` each, behind the fault module.
 */
export async function startGroupService(tokens = 2, flags: string[] = []): Promise<GroupService> {
  const group = await openGroupFixture({
    tokens,
    pins: Array(tokens).fill(TEST_PIN),
    withFaults: true,
  });
  const service = await startOn(
    group.env,
    () => group[Symbol.asyncDispose](),
    [...group.tokens.flatMap((t) => ["--token", t.label]), ...flags],
    { SOFTHSM2_CONF: group.env.conf, PKCS11_MODULE: group.faults!.library, ENSURE_KEYS: "" },
  );
  return Object.assign(service, { group });
}

/** Starts the service with `flags` and `env` on `softhsm`; `cleanUp` runs after it stops. */
async function startOn(
  softhsm: SoftHsm,
  cleanUp: () => PromiseLike<void>,
  flags: string[],
  env: Record<string, string>,
): Promise<TestService> {
  const logs: string[] = [];
  const log: Logger = (level, message, fields = {}) => {
    logs.push(JSON.stringify({ level, message, ...fields }));
  };
  let service: Service;
  let config: ServiceConfig;
  try {
    config = loadConfig(["--port", "0", "--pool-min", "0", ...flags], {
      PKCS11_PIN: TEST_PIN,
      ...env,
    });
    service = await startService({ config, log });
  } catch (error) {
    await cleanUp();
    throw error;
  }
  const request = (path: string, init?: RequestInit) => fetch(service.url + path, init);
  const read = async (response: Response): Promise<JsonReply> => {
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    return { status: response.status, headers: response.headers, text, body };
  };
  const get = async (path: string) => read(await request(path));
  return {
    service,
    softhsm,
    config,
    logs,
    fetch: request,
    get,
    post: async (path, body) =>
      read(
        await request(path, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: typeof body === "string" ? body : JSON.stringify(body),
        }),
      ),
    async poolStats() {
      const { body } = await get("/pool/stats");
      return body.pools[0];
    },
    async [Symbol.asyncDispose]() {
      try {
        await service.shutdown("test done");
      } finally {
        await cleanUp();
      }
    },
  };
}

/** Random bytes of any length (getRandomValues gives at most 64 KiB per call). */
export function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** Polls `check` until it returns true; fails after `attempts` tries, naming `what`. */
export async function eventually(
  what: string,
  check: () => boolean | Promise<boolean>,
  attempts = 500,
): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`never happened: ${what}`);
}
