/**
 * Many callers on a few sessions: every result right, never more sessions
 * than the pool's max, and the event loop free while the HSM works.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { openTestHsm, OtherBinding, timerGapsDuring } from "./fixture.ts";

/** Open sessions of the module, counted with C_GetSessionInfo over the handle numbers. */
function openSessions(other: OtherBinding): number {
  let open = 0;
  const handle = Buffer.alloc(8);
  for (let n = 1; n <= 512; n++) {
    handle.writeBigUInt64LE(BigInt(n));
    try {
      other.pkcs11.C_GetSessionInfo(handle);
      open++;
    } catch {
      // not a session
    }
  }
  return open;
}

Deno.test("500 concurrent operations on a pool of 4 all succeed with correct results", async () => {
  await using t = await openTestHsm({ pool: { max: 4 } });
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "load" }));
  const pair = await t.hsm.use((s) => s.generateEcKeyPair({ label: "load" }));
  const results = await Promise.all(Array.from({ length: 500 }, (_, i) => {
    const data = new TextEncoder().encode(`message ${i}`);
    return i % 2 === 0
      ? t.hsm.use(async (s) => {
        const sealed = await s.encrypt(key, data);
        return Buffer.from(await s.decrypt(key, sealed)).equals(data);
      })
      : t.hsm.use(async (s) => s.verify(pair.publicKey, data, await s.sign(pair.privateKey, data)));
  }));
  assert.equal(results.filter((ok) => ok).length, 500);
  const stats = t.hsm.stats();
  assert.equal(stats.created, 4);
  assert.equal(stats.destroyed, 0, "no session was discarded (no CKR_OPERATION_ACTIVE)");
  assert.equal(stats.inUse, 0);
});

Deno.test("never more than 4 sessions (plus the login anchor) are open during 500 operations", async () => {
  await using t = await openTestHsm({ pool: { max: 4 } });
  using other = new OtherBinding(t.env.library);
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "load" }));
  let most = 0;
  let mostInPool = 0;
  await Promise.all(Array.from({ length: 500 }, (_, i) =>
    t.hsm.use(async (s) => {
      await s.encrypt(key, new Uint8Array(256));
      if (i % 25 === 0) most = Math.max(most, openSessions(other));
      mostInPool = Math.max(mostInPool, t.hsm.stats().size);
    })));
  assert.ok(most >= 2, `the probe saw sessions (${most})`);
  assert.ok(most <= 5, `at most 4 pooled sessions + 1 anchor were open, saw ${most}`);
  assert.ok(mostInPool <= 4, `pool size stayed within max, saw ${mostInPool}`);
});

Deno.test("a timer keeps firing while a long batch of HSM work runs", async () => {
  await using t = await openTestHsm({ pool: { max: 4 } });
  const pair = await t.hsm.use((s) => s.generateEcKeyPair({ label: "busy" }));
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "busy" }));
  const started = performance.now();
  const { ticks, worstGapMs: worstGap } = await timerGapsDuring(() =>
    Promise.all(
      Array.from(
        { length: 3000 },
        (_, i) =>
          t.hsm.use((s) =>
            i % 3 === 0
              ? s.sign(pair.privateKey, new Uint8Array(64))
              : s.encrypt(key, new Uint8Array(1024))
          ),
      ),
    )
  );
  assert.ok(ticks > 0, "the timer fired while the batch ran");
  // A blocked loop shows a gap as long as the work; a shared machine slows both alike.
  const elapsed = performance.now() - started;
  assert.ok(
    worstGap < elapsed / 2,
    `worst gap ${worstGap.toFixed(1)} ms of ${elapsed.toFixed(1)} ms`,
  );
});
