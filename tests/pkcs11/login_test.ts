/**
 * The login: it happens while the handle opens, a PIN the token refuses
 * costs one `C_Login` and is never sent again, and a handle only works with
 * the PIN that logged the token in. `C_Login` calls are counted by OpenSC's
 * pkcs11-spy, which sees every PKCS#11 call, not only by the adapter's
 * counter.
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
import { logOutBehindTheBack, openTestHsm, OtherBinding, Pkcs11Spy } from "./fixture.ts";

const WRONG_PIN = "wrong-pin-4711";
const data = new Uint8Array(16);
const FAKE_KEY: HsmKey = { handle: Buffer.alloc(8), label: "k", id: "01", kind: "aes" };

function assertRefused(error: unknown, pin = WRONG_PIN): void {
  assert.ok(error instanceof PinRefusedError, String(error));
  assert.equal(error.ckr, "CKR_PIN_INCORRECT");
  assert.match(error.message, /CKR_PIN_INCORRECT.*check PKCS11_PIN.*open a new handle/);
  for (const text of [error.message, error.stack, (error.cause as Error).message]) {
    assert.ok(!String(text).includes(pin), "the PIN never appears in an error");
  }
}

Deno.test("a wrong PIN fails openHsm itself with PinRefusedError after exactly one C_Login", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  using spy = new Pkcs11Spy(env.library);
  const options = { library: spy.library, tokenLabel: env.tokenLabel, pin: WRONG_PIN };
  assertRefused(await openHsm({ ...options, pool: { min: 4 } }).catch((e) => e));
  assert.equal(spy.calls("C_Login"), 1, "C_Login calls seen by pkcs11-spy");
  assertRefused(await openHsm(options).catch((e) => e));
  assert.equal(spy.calls("C_Login"), 2, "a new handle tries the PIN once more, and only once");
});

Deno.test("a PIN refused when logging in again is never sent again, and every call fails at once", async () => {
  const breaker = { threshold: 2, cooldownMs: 20 };
  await using t = await openTestHsm({ pool: { max: 4, breaker } }, { spied: true });
  const { env, hsm, spy } = t as Required<typeof t>;
  await hsm.use((s) => s.generateAesKey({ label: "k" }));
  const newPin = "changed-4242";
  {
    using other = new OtherBinding(env.library);
    const session = other.pkcs11.C_OpenSession(other.slot(env.tokenLabel), 0x6);
    other.pkcs11.C_SetPIN(session, env.pin, newPin); // the token is logged in: ours
    other.pkcs11.C_CloseSession(session);
  }
  logOutBehindTheBack(env);
  assertRefused(await hsm.encrypt("k", data).catch((e) => e), env.pin);
  const load = () =>
    Promise.allSettled(Array.from({ length: 40 }, (_, i) => {
      const calls = [
        () => hsm.use((s) => s.random(4)),
        () => hsm.encrypt("k", data),
        () => hsm.decrypt("01", new Uint8Array(40)),
        () => hsm.ops.encrypt(FAKE_KEY, data),
        () => hsm.acquire(),
      ];
      return calls[i % calls.length]();
    }));
  const first = await load();
  await new Promise((resolve) => setTimeout(resolve, 100)); // past the breaker's cooldown
  const { createErrors } = hsm.stats();
  const later = await load();
  for (const result of [...first, ...later]) {
    assert.equal(result.status, "rejected");
    assertRefused(result.reason, env.pin);
  }
  assert.equal(spy.calls("C_Login"), 2, "the open's, and one refused try");
  assert.equal(hsm.stats().createErrors, createErrors, "no session was even tried");
  assert.ok(!JSON.stringify(hsm.stats()).includes(env.pin), "no PIN in the stats");
});

Deno.test("a second handle with another PIN is refused while the token is logged in", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  using spy = new Pkcs11Spy(env.library);
  const options = { library: spy.library, tokenLabel: env.tokenLabel, pin: env.pin };
  await using good = await openHsm(options);
  const error = await openHsm({ ...options, pin: WRONG_PIN }).catch((e) => e);
  assert.ok(error instanceof PinMismatchError, String(error));
  assert.match(error.message, /not the one it was logged in with.*check PKCS11_PIN/);
  for (const pin of [WRONG_PIN, env.pin]) assert.ok(!String(error.stack).includes(pin));
  assert.equal(spy.calls("C_Login"), 1, "the wrong PIN was never sent");
  assert.equal((await good.use((s) => s.random(4))).length, 4, "the good handle still works");
});
