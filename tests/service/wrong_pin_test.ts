import assert from "node:assert/strict";
import pkcs11js from "pkcs11js";
import { findPkcs11Module } from "../../adapters/pkcs11/mod.ts";
import { OtherBinding } from "../pkcs11/fixture.ts";
import { KEY_LABEL, startTestService, TEST_PIN } from "./fixture.ts";

// OpenSC's pkcs11-spy sits between the service and SoftHSM and logs every
// call, so the test counts the C_Login calls the service really makes.
const SPY = "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so";
const hasSpy = await Deno.stat(SPY).then(() => true, () => false);
const OTHER_PIN = "changed-behind-its-back";

function loginCalls(spyLog: string): number {
  return Deno.readTextFileSync(spyLog).split("\n").filter((line) => /\bC_Login\b/.test(line))
    .length;
}

/** The spy's settings, in this process's environment while `fn` runs (the spy reads them at load). */
async function withSpy<T>(spyLog: string, fn: () => Promise<T>): Promise<T> {
  const saved = { PKCS11SPY: Deno.env.get("PKCS11SPY"), out: Deno.env.get("PKCS11SPY_OUTPUT") };
  Deno.env.set("PKCS11SPY", findPkcs11Module());
  Deno.env.set("PKCS11SPY_OUTPUT", spyLog);
  try {
    return await fn();
  } finally {
    if (saved.PKCS11SPY === undefined) Deno.env.delete("PKCS11SPY");
    else Deno.env.set("PKCS11SPY", saved.PKCS11SPY);
    if (saved.out === undefined) Deno.env.delete("PKCS11SPY_OUTPUT");
    else Deno.env.set("PKCS11SPY_OUTPUT", saved.out);
  }
}

Deno.test({
  name:
    "a PIN the token refuses at run time: one C_Login, then /healthz says fix the PIN and restart",
  ignore: !hasSpy,
  async fn() {
    const spyLog = await Deno.makeTempFile({ prefix: "pkcs11-spy-", suffix: ".log" });
    try {
      await withSpy(spyLog, async () => {
        await using t = await startTestService([
          "--pool-max",
          "2",
          "--breaker-threshold",
          "2",
          "--breaker-cooldown-ms",
          "100", // many cooldowns pass below: none may bring a login
        ], { PKCS11_MODULE: SPY });
        assert.equal(
          (await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" })).status,
          200,
        );

        // Another application changes the PIN and closes every session, which
        // logs the token out: the service's PIN is now wrong (see breaker_test.ts).
        using other = new OtherBinding(t.softhsm.library);
        const slot = other.slot(t.softhsm.tokenLabel);
        const session = other.pkcs11.C_OpenSession(
          slot,
          pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION,
        );
        other.pkcs11.C_SetPIN(session, TEST_PIN, OTHER_PIN);
        other.pkcs11.C_CloseAllSessions(slot);
        const loginsBefore = loginCalls(spyLog);

        const replies = [];
        const started = performance.now();
        while (performance.now() - started < 1500) {
          replies.push(await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" }));
          replies.push(await t.get("/healthz"));
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        for (const reply of replies) assert.equal(reply.status, 503, reply.text);
        assert.equal(replies[0].body.error, "hsm_unavailable");
        assert.match(replies[0].body.message, /CKR_PIN_INCORRECT/);
        const health = await t.get("/healthz");
        assert.equal(health.body.breaker, "open");
        assert.match(health.body.reason, /CKR_PIN_INCORRECT/);
        assert.match(health.body.reason, /fix PKCS11_PIN and restart/);
        const texts = [...replies, health].map((r) => r.text).concat(t.logs);
        for (const text of texts) {
          assert.ok(!text.includes(TEST_PIN) && !text.includes(OTHER_PIN), text);
        }
        // Needs the PKCS#11 and pool work: one C_Login on a refused PIN, then
        // the breaker stays open (today: one per breaker threshold and cooldown).
        assert.equal(loginCalls(spyLog) - loginsBefore, 1, "one C_Login after the PIN changed");
      });
    } finally {
      await Deno.remove(spyLog);
    }
  },
});
