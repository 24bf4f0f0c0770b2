/**
 * A module that stands for a network HSM (the fault module in front of
 * SoftHSM, with latency): its calls move to worker threads, and when they hang, the
 * caller's deadline bounds the whole call while the event loop turns, the
 * stuck session stays out of use, and the handle serves again once the HSM
 * answers.
 */
import assert from "node:assert/strict";
import { PoolTimeoutError } from "../../mod.ts";
import { openHsm } from "../../adapters/pkcs11/mod.ts";
import { openFaultModule } from "../../tasks/setup/fault_module.ts";
import { provisionSoftHsm } from "../../tasks/setup/softhsm.ts";
import { timerGapsDuring } from "./fixture.ts";

const data = new TextEncoder().encode("over the wire");

async function openSlowHsm(max: number) {
  const env = await provisionSoftHsm({ temporary: true });
  const faults = await openFaultModule(env.library);
  faults.set({ delayUs: 2000 });
  const hsm = await openHsm({
    library: faults.library,
    tokenLabel: env.tokenLabel,
    pin: env.pin,
    pool: { max },
  }).catch(async (error) => {
    faults[Symbol.dispose]();
    await env[Symbol.asyncDispose]();
    throw error;
  });
  return {
    hsm,
    faults,
    async [Symbol.asyncDispose]() {
      faults.reset(); // nothing hangs while closing
      try {
        await hsm.close();
      } finally {
        faults[Symbol.dispose]();
        await env[Symbol.asyncDispose]();
      }
    },
  };
}

Deno.test("a slow module's calls move to worker threads and give the same results", async () => {
  await using t = await openSlowHsm(2);
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  const pair = await t.hsm.use((s) => s.generateEcKeyPair({ label: "p" }));
  assert.equal(t.hsm.stats().calls, "this thread");
  for (let i = 0; i < 20; i++) await t.hsm.ops.encrypt(key, data);
  assert.equal(t.hsm.stats().calls, "worker threads");
  const results = await Promise.all(Array.from({ length: 10 }, async (_, i) => {
    const message = new TextEncoder().encode(`message ${i}`);
    const sealed = await t.hsm.ops.encrypt(key, message);
    const signature = await t.hsm.ops.sign(pair.privateKey, message);
    return {
      opened: await t.hsm.ops.decrypt(key, sealed),
      verified: await t.hsm.ops.verify(pair.publicKey, message, signature),
      message,
    };
  }));
  for (const { opened, verified, message } of results) {
    assert.deepEqual(opened, message);
    assert.equal(verified, true);
  }
  const digest = await t.hsm.ops.digest(data);
  assert.deepEqual(digest, new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
});

Deno.test("a hanging HSM: timeoutMs bounds the whole call and the event loop keeps turning", async () => {
  await using t = await openSlowHsm(1);
  await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  for (let i = 0; i < 20; i++) await t.hsm.encrypt("k", data); // on threads, keys cached
  assert.equal(t.hsm.stats().calls, "worker threads");
  t.faults.set({ hang: true });
  let error: unknown;
  const { ticks, worstGapMs } = await timerGapsDuring(async () => {
    error = await t.hsm.encrypt("k", data, { timeoutMs: 300 }).catch((e) => e);
  });
  assert.ok(error instanceof PoolTimeoutError, String(error));
  assert.match(String(error), /did not answer encrypt within the call's 300 ms/);
  assert.ok(ticks > 0, "timers fired while the call waited");
  assert.ok(worstGapMs < 300, `the loop was never blocked for the call (worst gap ${worstGapMs})`);
  assert.equal(t.hsm.stats().inUse, 1, "the stuck session stays out of use");
  const waiting = await t.hsm.encrypt("k", data, { timeoutMs: 50 }).catch((e) => e);
  assert.ok(waiting instanceof PoolTimeoutError, "nobody else gets the stuck session");
  const reason = new Error("caller left");
  const controller = new AbortController();
  const aborted = t.hsm.encrypt("k", data, { signal: controller.signal }).catch((e) => e);
  controller.abort(reason);
  assert.equal(await aborted, reason);
  t.faults.reset(); // the HSM answers again
  const { ciphertext, keyId } = await t.hsm.encrypt("k", data, { timeoutMs: 10_000 });
  assert.deepEqual(await t.hsm.decrypt(keyId, ciphertext), data, "the handle serves again");
});
