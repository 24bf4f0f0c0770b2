/**
 * The worker engine (adapters/pkcs11/dispatch.ts): the same results as the
 * other engines, batched operations within the pool's limits, errors with
 * their CKR names, and nothing left running after close.
 */
import assert from "node:assert/strict";
import { PoolClosedError } from "../../mod.ts";
import type { Hsm, HsmKey } from "../../adapters/pkcs11/mod.ts";
import { openTestHsm, timerGapsDuring } from "./fixture.ts";

/**
 * Runs `callers` loops of `hsm.ops.encrypt` until each one fails; once `warmUp` operations have
 * succeeded, calls `stop`. Resolves with the error each loop ended on.
 */
async function encryptUntilStopped(
  hsm: Hsm,
  key: HsmKey,
  callers: number,
  warmUp: number,
  stop: () => Promise<void>,
): Promise<unknown[]> {
  let done = 0;
  const loops = Array.from({ length: callers }, async () => {
    for (;;) {
      try {
        await hsm.ops.encrypt(key, new Uint8Array(256));
        done++;
      } catch (error) {
        return error;
      }
    }
  });
  while (done < warmUp) await new Promise((resolve) => setTimeout(resolve, 1));
  await stop();
  return await Promise.all(loops);
}

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("the worker engine's AES-GCM and ECDSA agree with WebCrypto", async () => {
  await using t = await openTestHsm({ engine: "workers", workerThreads: 2 });
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const webKey = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["decrypt"]);
  const data = text("through a worker thread");
  const { sealed, signature, point } = await t.hsm.use(async (s) => {
    const key = s.createAesKey(raw, { label: "known" });
    const pair = await s.generateEcKeyPair({ label: "w", token: false });
    return {
      sealed: await s.encrypt(key, data, text("aad")),
      signature: await s.sign(pair.privateKey, data),
      point: s.exportEcPublicKey(pair.publicKey),
    };
  });
  const opened = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: sealed.subarray(0, 12), additionalData: text("aad") },
    webKey,
    sealed.subarray(12),
  );
  assert.deepEqual(new Uint8Array(opened), data);
  const publicKey = await crypto.subtle.importKey(
    "raw",
    point,
    { name: "ECDSA", namedCurve: "P-256" },
    false,
    ["verify"],
  );
  assert.ok(
    await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, publicKey, signature, data),
  );
});

Deno.test("batched operations: 500 concurrent on a pool of 4, all correct, within max", async () => {
  await using t = await openTestHsm({ engine: "workers", workerThreads: 2, pool: { max: 4 } });
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "batch" }));
  const pair = await t.hsm.use((s) => s.generateEcKeyPair({ label: "batch" }));
  let mostInPool = 0;
  const results = await Promise.all(Array.from({ length: 500 }, async (_, i) => {
    const data = text(`message ${i}`);
    mostInPool = Math.max(mostInPool, t.hsm.stats().size);
    if (i % 3 === 0) {
      const signature = await t.hsm.ops.sign(pair.privateKey, data);
      return await t.hsm.ops.verify(pair.publicKey, data, signature);
    }
    const sealed = await t.hsm.ops.encrypt(key, data);
    return new TextDecoder().decode(await t.hsm.ops.decrypt(key, sealed)) === `message ${i}`;
  }));
  assert.equal(results.filter(Boolean).length, 500);
  assert.ok(mostInPool <= 4);
  const stats = t.hsm.stats();
  assert.equal(stats.destroyed, 0);
  assert.equal(stats.inUse, 0);
  assert.ok(
    stats.acquired < 500,
    `batches shared leases (${stats.acquired} leases for 1000 calls)`,
  );
});

Deno.test("the worker engine reports failures with the PKCS#11 function and CKR name", async () => {
  await using t = await openTestHsm({ engine: "workers", workerThreads: 1 });
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  const sealed = await t.hsm.ops.encrypt(key, text("x"));
  sealed[20] ^= 1;
  await assert.rejects(() => t.hsm.ops.decrypt(key, sealed), /CKR_ENCRYPTED_DATA_INVALID/);
  const pair = await t.hsm.use((s) => s.generateEcKeyPair({ label: "k" }));
  assert.equal(await t.hsm.ops.verify(pair.publicKey, text("a"), new Uint8Array(64)), false);
  await assert.rejects(
    () => t.hsm.ops.sign({ ...pair.privateKey, handle: key.handle }, text("a")),
    /^HsmError: C_Sign(Init)? failed: CKR_/,
  );
  assert.deepEqual(
    await t.hsm.ops.digest(text("abc")),
    new Uint8Array(await crypto.subtle.digest("SHA-256", text("abc"))),
  );
});

Deno.test("encrypt by label on the worker engine round-trips through the key cache", async () => {
  await using t = await openTestHsm({ engine: "workers", workerThreads: 1 });
  await t.hsm.use((s) => s.generateAesKey({ label: "svc" }));
  for (let i = 0; i < 20; i++) {
    const { ciphertext, keyId } = await t.hsm.encrypt("svc", text(`n${i}`));
    assert.deepEqual(await t.hsm.decrypt(keyId, ciphertext), text(`n${i}`));
  }
});

Deno.test("a key added under a label is used once the cache entry expires", async () => {
  await using t = await openTestHsm({ keyCacheMs: 0 });
  const first = await t.hsm.use((s) => s.generateAesKey({ label: "rot" }));
  assert.equal((await t.hsm.encrypt("rot", text("a"))).keyId, first.id);
  await t.hsm.use((s) => s.destroyKey(first));
  const second = await t.hsm.use((s) => s.generateAesKey({ label: "rot" }));
  assert.equal((await t.hsm.encrypt("rot", text("b"))).keyId, second.id);
});

Deno.test("batched AES-GCM handles an empty plaintext and AAD", async () => {
  await using t = await openTestHsm({ engine: "workers", workerThreads: 1 });
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  const sealed = await t.hsm.ops.encrypt(key, new Uint8Array(0), text("aad"));
  assert.equal(sealed.length, 28);
  assert.equal((await t.hsm.ops.decrypt(key, sealed, text("aad"))).length, 0);
  await assert.rejects(() => t.hsm.ops.decrypt(key, sealed), /CKR_ENCRYPTED_DATA_INVALID/);
});

Deno.test("a timer keeps firing while batched work runs on the worker engine", async () => {
  await using t = await openTestHsm({ engine: "workers", workerThreads: 2, pool: { max: 2 } });
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  const pair = await t.hsm.use((s) => s.generateEcKeyPair({ label: "k" }));
  const started = performance.now();
  const { ticks, worstGapMs: worstGap } = await timerGapsDuring(() =>
    Promise.all(
      Array.from(
        { length: 3000 },
        (_, i) =>
          i % 3 === 0
            ? t.hsm.ops.sign(pair.privateKey, new Uint8Array(64))
            : t.hsm.ops.encrypt(key, new Uint8Array(1024)),
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

Deno.test("batched operations after close fail with the pool's error", async () => {
  const t = await openTestHsm({ engine: "workers", workerThreads: 1 });
  try {
    const key = await t.hsm.use((s) => s.generateAesKey({ label: "k", token: false }));
    await t.hsm.close();
    await assert.rejects(() => t.hsm.ops.encrypt(key, text("late")), /clos/i);
  } finally {
    await t[Symbol.asyncDispose]();
  }
});

Deno.test("close() under a steady stream of batched operations finishes, and later ones fail", async () => {
  const t = await openTestHsm({ engine: "workers", workerThreads: 1, pool: { max: 2 } });
  try {
    const key = await t.hsm.use((s) => s.generateAesKey({ label: "k", token: false }));
    const errors = await encryptUntilStopped(t.hsm, key, 16, 200, () => t.hsm.close());
    assert.ok(errors.every((e) => e instanceof PoolClosedError), String(errors[0]));
    assert.equal(t.hsm.stats().state, "closed");
  } finally {
    await t[Symbol.asyncDispose]();
  }
});

Deno.test("a batch runner that cannot get a session fails no job another runner can serve", async () => {
  await using t = await openTestHsm({
    engine: "workers",
    workerThreads: 2,
    pool: { max: 2, acquireTimeoutMs: 200 },
  });
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  await using _held = await t.hsm.acquire(); // one session held elsewhere: one runner waits in vain
  const started = performance.now();
  let done = 0;
  const failures: unknown[] = [];
  // More callers than one runner's two batches of 256 hold, for longer than the acquire timeout.
  await Promise.all(Array.from({ length: 1000 }, async () => {
    while (performance.now() - started < 1000) {
      await t.hsm.ops.encrypt(key, text("x")).then(() => done++, (e) => failures.push(e));
    }
  }));
  assert.deepEqual(failures.slice(0, 1), [], `${failures.length} failed`);
  assert.ok(done > 1000);
  assert.ok(t.hsm.stats().timedOut >= 1, "a second runner did wait for a session and gave up");
});

Deno.test("a forced pool close under batched load fails the calls and never crashes the process", async () => {
  const t = await openTestHsm({ engine: "workers", workerThreads: 1, pool: { max: 2 } });
  try {
    const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
    const errors = await encryptUntilStopped(
      t.hsm,
      key,
      600,
      2000,
      () => t.hsm.pool.close({ timeoutMs: 1 }),
    );
    assert.ok(
      errors.every((e) => e instanceof Error),
      String(errors.find((e) => !(e instanceof Error))),
    );
  } finally {
    await t[Symbol.asyncDispose]();
  }
});
