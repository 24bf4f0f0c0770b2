/**
 * Every option a type accepts is honoured: `signal` and `timeoutMs` of
 * `encrypt`, `decrypt` and `ops`, and nothing of theirs stays scheduled once
 * a call is done; explicit options win over the environment.
 */
import assert from "node:assert/strict";
import { PoolTimeoutError } from "../../mod.ts";
import { openHsm } from "../../adapters/pkcs11/mod.ts";
import { provisionSoftHsm } from "../../tasks/setup/softhsm.ts";
import { openTestHsm } from "./fixture.ts";

const data = new TextEncoder().encode("bounded");

{
  Deno.test("encrypt and decrypt reject an already-aborted signal with its reason", async () => {
    await using t = await openTestHsm();
    await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
    const { ciphertext, keyId } = await t.hsm.encrypt("k", data); // the key cache is warm
    const reason = new Error("caller gave up");
    const signal = AbortSignal.abort(reason);
    assert.equal(await t.hsm.encrypt("k", data, { signal }).catch((e) => e), reason);
    assert.equal(await t.hsm.decrypt(keyId, ciphertext, { signal }).catch((e) => e), reason);
  });

  Deno.test("timeoutMs bounds encrypt, decrypt and ops when no session is free", async () => {
    await using t = await openTestHsm({ pool: { max: 1 } });
    const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
    const { ciphertext, keyId } = await t.hsm.encrypt("k", data);
    await using _held = await t.hsm.acquire(); // the only session
    const calls = [
      t.hsm.encrypt("k", data, { timeoutMs: 100 }),
      t.hsm.decrypt(keyId, ciphertext, { timeoutMs: 100 }),
      t.hsm.ops.encrypt(key, data, undefined, { timeoutMs: 100 }),
    ].map((p) => p.catch((e) => e));
    for (const error of await Promise.all(calls)) {
      assert.ok(error instanceof PoolTimeoutError, String(error));
    }
  });

  Deno.test("a signal aborted while waiting for a session ends the wait", async () => {
    await using t = await openTestHsm({ pool: { max: 1 } });
    const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
    await t.hsm.encrypt("k", data);
    const held = await t.hsm.acquire();
    const controller = new AbortController();
    const waiting = [
      t.hsm.encrypt("k", data, { signal: controller.signal }),
      t.hsm.ops.encrypt(key, data, undefined, { signal: controller.signal }),
    ].map((p) => p.catch((e) => e));
    const reason = new Error("stop waiting");
    controller.abort(reason);
    for (const outcome of await Promise.all(waiting)) assert.equal(outcome, reason);
    await held.release();
    assert.ok(await t.hsm.ops.encrypt(key, data), "the pool serves the next caller");
  });
}

Deno.test("an explicit slotId wins over PKCS11_TOKEN_LABEL in the environment", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  const slotId = await (async () => {
    await using hsm = await openHsm({
      library: env.library,
      tokenLabel: env.tokenLabel,
      pin: env.pin,
    });
    return hsm.stats().slotId;
  })();
  const saved = Deno.env.get("PKCS11_TOKEN_LABEL");
  Deno.env.set("PKCS11_TOKEN_LABEL", "NoSuchToken");
  try {
    await using hsm = await openHsm({ library: env.library, slotId, pin: env.pin });
    assert.equal(hsm.tokenLabel, env.tokenLabel);
    assert.equal((await hsm.use((s) => s.random(4))).length, 4);
  } finally {
    if (saved === undefined) Deno.env.delete("PKCS11_TOKEN_LABEL");
    else Deno.env.set("PKCS11_TOKEN_LABEL", saved);
  }
});

Deno.test("a call with timeoutMs that completes leaves no timer behind", async () => {
  // Deno's op sanitizer fails this test if a timer of the calls is still scheduled at its end.
  await using t = await openTestHsm();
  const key = await t.hsm.use((s) => s.generateAesKey({ label: "k" }));
  for (let i = 0; i < 3; i++) {
    const { ciphertext, keyId } = await t.hsm.encrypt("k", data, { timeoutMs: 60_000 });
    await t.hsm.decrypt(keyId, ciphertext, { timeoutMs: 60_000 });
    await t.hsm.ops.encrypt(key, data, undefined, { timeoutMs: 60_000 });
    await t.hsm.use((s) => s.digest(data), { timeoutMs: 60_000 });
  }
});
