/**
 * The module's lifecycle: initialised once per process, finalised by its
 * last user and only if we initialised it; close() closes every session.
 */
import assert from "node:assert/strict";
import { openHsm } from "../../adapters/pkcs11/mod.ts";
import { registeredModule } from "../../adapters/pkcs11/module.ts";
import { provisionSoftHsm } from "../../tasks/setup/softhsm.ts";
import { moduleIsInitialised, openTestHsm, OtherBinding } from "./fixture.ts";

Deno.test("close() closes every session and finalises the module", async () => {
  const t = await openTestHsm({ pool: { max: 3 } });
  try {
    const leases = await Promise.all([t.hsm.acquire(), t.hsm.acquire(), t.hsm.acquire()]);
    await Promise.all(leases.map((l) => l.release()));
    assert.equal(registeredModule(t.env.library)?.sessions, 4, "3 pooled sessions + the anchor");
    await t.hsm.close();
    const stats = t.hsm.stats();
    assert.equal(stats.state, "closed");
    assert.equal(stats.destroyed, stats.created);
    assert.equal(registeredModule(t.env.library), undefined, "the registry let go of the module");
    assert.equal(moduleIsInitialised(t.env.library), false, "C_Finalize ran");
  } finally {
    await t[Symbol.asyncDispose]();
  }
});

Deno.test("two handles share one initialisation; the last close finalises", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  const options = { library: env.library, tokenLabel: env.tokenLabel, pin: env.pin };
  const a = await openHsm(options);
  const b = await openHsm(options);
  try {
    assert.equal(registeredModule(env.library)?.refs, 2);
    await a.use((s) => s.generateAesKey({ label: "k" }));
    await a.close();
    assert.equal(moduleIsInitialised(env.library), true, "b still holds the module");
    const { keyId, ciphertext } = await b.encrypt("k", new Uint8Array(8));
    assert.equal(
      (await b.decrypt(keyId, ciphertext)).length,
      8,
      "and b's login survived a's close",
    );
  } finally {
    await a.close();
    await b.close();
  }
  assert.equal(moduleIsInitialised(env.library), false);
});

Deno.test("a module initialised by someone else is used and never finalised", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  using other = new OtherBinding(env.library);
  assert.equal(other.initialisedHere, true);
  const hsm = await openHsm({ library: env.library, tokenLabel: env.tokenLabel, pin: env.pin });
  try {
    assert.equal(registeredModule(env.library)?.initialisedByUs, false);
    await hsm.use((s) => s.random(8));
  } finally {
    await hsm.close();
  }
  assert.doesNotThrow(() => other.pkcs11.C_GetSlotList(true), "still initialised for its owner");
});

Deno.test("the token is found by label after its slot id changed", async () => {
  await using env = await provisionSoftHsm({ temporary: true });
  // A second token makes SoftHSM renumber slots; the label still finds ours.
  const util = new Deno.Command("softhsm2-util", {
    args: ["--init-token", "--free", "--label", "Second", "--pin", "1111", "--so-pin", "2222"],
    env: { SOFTHSM2_CONF: env.conf },
    stdout: "null",
    stderr: "null",
  });
  assert.ok((await util.output()).success);
  await using hsm = await openHsm({
    library: env.library,
    tokenLabel: env.tokenLabel,
    pin: env.pin,
  });
  assert.equal(hsm.tokenLabel, env.tokenLabel);
  assert.equal(await hsm.use((s) => s.random(4).length), 4);
});

Deno.test("a closed handle refuses new work", async () => {
  await using t = await openTestHsm();
  await t.hsm.close();
  await assert.rejects(() => t.hsm.use(() => 1), /clos/i);
});

{
  Deno.test("openHsm with bad pool options rejects and holds nothing", async () => {
    await using env = await provisionSoftHsm({ temporary: true });
    await assert.rejects(
      () =>
        openHsm({
          library: env.library,
          tokenLabel: env.tokenLabel,
          pin: env.pin,
          pool: { max: 0 },
        }),
      RangeError,
    );
    assert.equal(registeredModule(env.library), undefined, "the module reference was released");
    assert.equal(moduleIsInitialised(env.library), false, "and the module finalised");
  });
}

Deno.test("an unknown option is a TypeError naming it and the nearest known option", async () => {
  const error = await openHsm({ pin: "1234", tokenLable: "TestToken" } as never).catch((e) => e);
  assert.ok(error instanceof TypeError, String(error));
  assert.match(
    error.message,
    /openHsm: 'tokenLable' is not an option; did you mean 'tokenLabel'\?/,
  );
  assert.ok(!error.message.includes("1234"), "the PIN never appears in an error");
});
