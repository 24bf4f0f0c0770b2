/**
 * The login: a PIN the token refuses costs one `C_Login` per handle,
 * whatever the pool does, and a handle only works with the PIN that logged
 * the token in. `C_Login` calls are counted by OpenSC's pkcs11-spy, which
 * sees every PKCS#11 call, not only by the adapter's counter.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  type HsmKey,
  openHsm,
  PinMismatchError,
  PinRefusedError,
} from "../../adapters/pkcs11/mod.ts";
import { provisionSoftHsm } from "../../tasks/setup/softhsm.ts";
import { Pkcs11Spy } from "./fixture.ts";

const WRONG_PIN = "wrong-pin-4711";
const data = new Uint8Array(16);
const FAKE_KEY: HsmKey = { handle: Buffer.alloc(8), label: "k", id: "01", kind: "aes" };

function assertRefused(error: unknown): void {
  assert.ok(error instanceof PinRefusedError, String(error));
  assert.equal(error.ckr, "CKR_PIN_INCORRECT");
  assert.match(error.message, /CKR_PIN_INCORRECT.*check PKCS11_PIN.*open a new handle/);
  for (const text of [error.message, error.stack, (error.cause as Error).message]) {
    assert.ok(!String(text).includes(WRONG_PIN), "the PIN never appears in an error");
  }
}

Deno.test("a wrong PIN costs exactly one C_Login per handle, whatever the pool size and load", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  using spy = new Pkcs11Spy(env.library);
  await using hsm = await openHsm({
    library: spy.library,
    tokenLabel: env.tokenLabel,
    pin: WRONG_PIN,
    pool: { max: 10, breaker: { threshold: 2, cooldownMs: 20 } },
  });
  const load = () =>
    Promise.allSettled(Array.from({ length: 60 }, (_, i) => {
      const calls = [
        () => hsm.use(() => 1),
        () => hsm.encrypt("k", data),
        () => hsm.decrypt("01", new Uint8Array(40)),
        () => hsm.ops.encrypt(FAKE_KEY, data),
        () => hsm.acquire(),
      ];
      return calls[i % calls.length]();
    }));
  const first = await load();
  await new Promise((resolve) => setTimeout(resolve, 100)); // past the breaker's cooldown
  const later = await load();
  for (const result of [...first, ...later]) {
    assert.equal(result.status, "rejected");
    assertRefused(result.reason);
  }
  assert.equal(spy.calls("C_Login"), 1, "C_Login calls seen by pkcs11-spy");
  assert.equal(hsm.stats().loginAttempts, 1);
});

Deno.test("after a refused PIN every call fails at once, without asking the pool for a session", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  await using hsm = await openHsm({
    library: env.library,
    tokenLabel: env.tokenLabel,
    pin: WRONG_PIN,
  });
  assertRefused(await hsm.use(() => 1).catch((e) => e));
  const { createErrors, timedOut } = hsm.stats();
  const calls = [
    hsm.use(() => 1),
    hsm.acquire(),
    hsm.encrypt("k", data),
    hsm.decrypt("01", new Uint8Array(40)),
    hsm.ops.digest(data),
  ];
  for (const call of calls) assertRefused(await call.catch((e) => e));
  assert.equal(hsm.stats().createErrors, createErrors, "no session was even tried");
  assert.equal(hsm.stats().timedOut, timedOut);
  assert.ok(!JSON.stringify(hsm.stats()).includes(WRONG_PIN), "nor in the stats");
});

Deno.test("a new handle with the refused PIN tries it once more, and only once", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  using spy = new Pkcs11Spy(env.library);
  const options = { library: spy.library, tokenLabel: env.tokenLabel, pin: WRONG_PIN };
  for (let handle = 1; handle <= 2; handle++) {
    await using hsm = await openHsm(options);
    await Promise.allSettled([hsm.use(() => 1), hsm.use(() => 1), hsm.use(() => 1)]);
    assert.equal(spy.calls("C_Login"), handle);
  }
});

Deno.test("a second handle with another PIN is refused while the token is logged in", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  using spy = new Pkcs11Spy(env.library);
  const options = { library: spy.library, tokenLabel: env.tokenLabel, pin: env.pin };
  await using good = await openHsm(options);
  await good.use((s) => s.random(4));
  const error = await openHsm({ ...options, pin: WRONG_PIN }).catch((e) => e);
  assert.ok(error instanceof PinMismatchError, String(error));
  assert.match(error.message, /not the one it was logged in with.*check PKCS11_PIN/);
  for (const pin of [WRONG_PIN, env.pin]) assert.ok(!String(error.stack).includes(pin));
  assert.equal(spy.calls("C_Login"), 1, "the wrong PIN was never sent");
  assert.equal((await good.use((s) => s.random(4))).length, 4, "the good handle still works");
});

Deno.test("a handle opened before another logged in with a different PIN fails on first use", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  using spy = new Pkcs11Spy(env.library);
  const options = { library: spy.library, tokenLabel: env.tokenLabel, pin: env.pin };
  await using wrong = await openHsm({ ...options, pin: WRONG_PIN });
  await using good = await openHsm(options);
  await good.use((s) => s.random(4));
  for (let i = 0; i < 3; i++) {
    const error = await wrong.use((s) => s.random(4)).catch((e) => e);
    assert.ok(error instanceof PinMismatchError, String(error));
  }
  assert.equal(spy.calls("C_Login"), 1);
});
