/**
 * How `hsm.ops` use sessions on each engine: a lone caller's op leases a
 * session of its own, concurrent ops share leased sessions (session loops,
 * or worker batches), and ops under load come through sessions closed
 * behind the pool's back.
 */
import assert from "node:assert/strict";
import { findPkcs11Module } from "../../adapters/pkcs11/library.ts";
import type { OpenHsmOptions } from "../../adapters/pkcs11/mod.ts";
import { useSlowModule } from "../../tasks/bench/hsm_slow_module.ts";
import { openTestHsm, OtherBinding, type TestHsm, timerGapsDuring } from "./fixture.ts";

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("the default engine is the one that chooses by load", async () => {
  await using t = await openTestHsm();
  assert.equal(t.hsm.stats().engine, "auto");
});

Deno.test("auto engine: a lone caller awaiting op after op still lets timers fire", async () => {
  // Fast calls of a lone caller run on this thread and answer at once: the loop must still turn.
  await using t = await openTestHsm();
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  const pair = await t.hsm.use((s) => s.generateEcKeyPair({ label: "k" }));
  const started = performance.now();
  const { ticks, worstGapMs } = await timerGapsDuring(async () => {
    for (let i = 0; performance.now() - started < 300; i++) {
      await (i % 2 === 0
        ? t.hsm.ops.encrypt(key, new Uint8Array(1024))
        : t.hsm.ops.sign(pair.privateKey, new Uint8Array(64)));
    }
  });
  const elapsed = performance.now() - started;
  assert.ok(ticks > 0, "the timer fired while the ops ran");
  assert.ok(
    worstGapMs < elapsed / 2,
    `worst gap ${worstGapMs.toFixed(1)} of ${elapsed.toFixed(1)} ms`,
  );
});

for (const engine of ["auto", "async", "sync"] as const) {
  Deno.test(`${engine} engine: a lone caller's op leases a session of its own`, async () => {
    await using t = await openTestHsm({ engine });
    const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
    for (let i = 0; i < 5; i++) {
      const before = t.hsm.stats().acquired;
      const sealed = await t.hsm.ops.encrypt(key, text(`m${i}`));
      assert.equal(t.hsm.stats().acquired - before, 1, "one lease for the op");
      assert.deepEqual(await t.hsm.ops.decrypt(key, sealed), text(`m${i}`));
    }
  });
}

for (const engine of ["auto", "async", "sync", "workers"] as const) {
  Deno.test(`${engine} engine: concurrent ops share leased sessions instead of a lease each`, async () => {
    await using t = await openTestHsm({ engine, workerThreads: 1, pool: { max: 4 } });
    const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
    const before = t.hsm.stats().acquired;
    const sealed = await Promise.all(
      Array.from({ length: 64 }, (_, i) => t.hsm.ops.encrypt(key, text(`m${i}`))),
    );
    const leases = t.hsm.stats().acquired - before;
    assert.ok(leases <= 16, `${leases} leases for 64 concurrent ops`);
    const opened = await Promise.all(sealed.map((s) => t.hsm.ops.decrypt(key, s)));
    opened.forEach((plain, i) => assert.deepEqual(plain, text(`m${i}`)));
    assert.equal(t.hsm.stats().inUse, 0, "every lease went back");
  });

  Deno.test(`${engine} engine: ops under load come through sessions closed behind the pool's back`, async () => {
    await using t = await openTestHsm({ engine, workerThreads: 1, pool: { max: 2 } });
    const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
    await Promise.all(Array.from({ length: 16 }, () => t.hsm.ops.encrypt(key, text("warm"))));
    {
      using other = new OtherBinding(t.env.library);
      other.pkcs11.C_CloseAllSessions(other.slot(t.env.tokenLabel)); // also the login anchor
    }
    const sealed = await Promise.all(
      Array.from({ length: 16 }, (_, i) => t.hsm.ops.encrypt(key, text(`after ${i}`))),
    );
    for (const [i, s] of sealed.entries()) {
      assert.deepEqual(await t.hsm.ops.decrypt(key, s), text(`after ${i}`));
    }
    assert.equal(t.hsm.stats().loginAttempts, 2, "the token was logged in again once");
  });
}

/** The most sessions in use at once while rounds of 64 concurrent encrypts run (up to 20). */
async function mostInUse(t: TestHsm, enough: number): Promise<number> {
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  let most = 0;
  const probe = setInterval(() => (most = Math.max(most, t.hsm.stats().inUse)), 1);
  try {
    for (let round = 0; round < 20 && most < enough; round++) {
      await Promise.all(Array.from({ length: 64 }, () => t.hsm.ops.encrypt(key, text("x"))));
    }
  } finally {
    clearInterval(probe);
  }
  return most;
}

Deno.test("workers engine: concurrent ops run on a session per worker thread", async () => {
  // Calls that wait on a wire overlap only across threads: the work must not stay on one runner.
  await using t = await openTestHsm({ engine: "workers", workerThreads: 2, pool: { max: 4 } });
  assert.equal(await mostInUse(t, 2), 2, "one leased session per thread, never more");
});

/** Opens a handle on a module whose every `*Init` and crypto call waits 1 ms, as over a network. */
async function openSlowHsm(options: Partial<OpenHsmOptions>): Promise<TestHsm> {
  const library = await useSlowModule(findPkcs11Module(), 1000);
  try {
    return await openTestHsm({ library, ...options });
  } finally {
    Deno.env.delete("SLOW_PKCS11_MODULE");
    Deno.env.delete("SLOW_PKCS11_DELAY_US");
  }
}

Deno.test("auto engine: batched calls that wait on a wire get a worker thread per session", async () => {
  await using t = await openSlowHsm({ pool: { max: 4 } });
  assert.equal(await mostInUse(t, 4), 4, "a session (and a thread) for each of max sessions");
});

Deno.test("workers engine: an explicit workerThreads stays as it is when calls wait", async () => {
  await using t = await openSlowHsm({ engine: "workers", workerThreads: 1, pool: { max: 4 } });
  assert.equal(await mostInUse(t, 2), 1, "one thread, one session, as configured");
});
