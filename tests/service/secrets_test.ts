import assert from "node:assert/strict";
import { errorText } from "../../service/log.ts";
import { KEY_LABEL, startTestService, TEST_PIN } from "./fixture.ts";

Deno.test("no response, header, log line or metric ever contains the PIN", async () => {
  await using t = await startTestService(["--per-request"]);
  const seen: string[] = [];
  const record = async (response: Response) => {
    seen.push(await response.text(), JSON.stringify([...response.headers]));
  };
  const post = (path: string, body: string) =>
    t.fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body });
  const sealed = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: btoa("x") });
  for (const path of ["/pool/stats", "/metrics", "/healthz", "/nope", "/encrypt"]) {
    await record(await t.fetch(path));
  }
  for (const path of ["/encrypt", "/decrypt", "/encrypt-per-request"]) {
    await record(await post(path, "{"));
    await record(
      await post(path, JSON.stringify({ key_label: "nope", plaintext: "", ciphertext: "" })),
    );
  }
  await record(await post("/decrypt", JSON.stringify({ key_label: KEY_LABEL, ...sealed.body })));
  await record(
    await post("/encrypt-per-request", JSON.stringify({ key_label: KEY_LABEL, plaintext: "" })),
  );
  assert.ok(seen.length > 20);
  for (const text of [...seen, ...t.logs]) assert.ok(!text.includes(TEST_PIN), text);
});

Deno.test("a wrong PIN fails startup naming CKR_PIN_INCORRECT, never the PIN", async () => {
  const wrong = "wrong-PIN-31337";
  const error = await startTestService(["--acquire-timeout-ms", "10000"], { PKCS11_PIN: wrong })
    .then(
      async (t) => {
        await t[Symbol.asyncDispose]();
        assert.fail("the service started with a wrong PIN");
      },
      (e: unknown) => e,
    );
  const text = errorText(error);
  assert.match(text, /CKR_PIN_INCORRECT/);
  assert.ok(!text.includes(wrong), text);
  assert.ok(!text.includes(TEST_PIN), text);
});
