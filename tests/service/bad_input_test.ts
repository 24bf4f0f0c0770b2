import assert from "node:assert/strict";
import {
  eventually,
  type JsonReply,
  KEY_LABEL,
  startTestService,
  type TestService,
} from "./fixture.ts";

/** Every error is a JSON object with a code and a message, and never a stack trace. */
function assertJsonError(reply: JsonReply, status: number, code: string): void {
  assert.equal(reply.status, status, reply.text);
  assert.match(reply.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal(reply.body?.error, code, reply.text);
  assert.equal(typeof reply.body.message, "string");
  assert.doesNotMatch(reply.text, /\bat .*\.ts:\d+/, "no stack trace");
}

/** The pool is whole again: nothing lent out, nothing waiting, nothing discarded. */
async function assertPoolWhole(t: TestService): Promise<void> {
  const stats = await t.poolStats();
  assert.equal(stats.in_use, 0, "in use back to 0");
  assert.equal(stats.pending, 0);
  assert.equal(stats.destroyed, 0, "no session was discarded");
  assert.equal(stats.breaker, "closed");
}

async function sealed(t: TestService) {
  return (await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: btoa("secret") })).body;
}

const cases: [string, (t: TestService) => Promise<JsonReply>, number, string][] = [
  [
    "malformed JSON is 400 malformed_json",
    (t) => t.post("/encrypt", '{"key_label":'),
    400,
    "malformed_json",
  ],
  [
    "a JSON array instead of an object is 400",
    (t) => t.post("/encrypt", "[1,2]"),
    400,
    "malformed_json",
  ],
  [
    "invalid UTF-8 is 400 malformed_json",
    (t) =>
      t.fetch("/encrypt", { method: "POST", body: new Uint8Array([0x7b, 0xff, 0x7d]) })
        .then(read),
    400,
    "malformed_json",
  ],
  [
    "a missing plaintext is 400 missing_field",
    (t) => t.post("/encrypt", { key_label: KEY_LABEL }),
    400,
    "missing_field",
  ],
  [
    "a missing key_label is 400 missing_field",
    (t) => t.post("/decrypt", { ciphertext: "AAAA" }),
    400,
    "missing_field",
  ],
  [
    "a number where a string belongs is 400 invalid_field",
    (t) => t.post("/encrypt", { key_label: KEY_LABEL, plaintext: 42 }),
    400,
    "invalid_field",
  ],
  [
    "an unknown field is 400 unknown_field",
    (t) => t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "", extra: "x" }),
    400,
    "unknown_field",
  ],
  [
    "an empty key_label is 400 invalid_field",
    (t) => t.post("/encrypt", { key_label: "", plaintext: "" }),
    400,
    "invalid_field",
  ],
  [
    "plaintext that is not base64 is 400 invalid_base64",
    (t) => t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "not base64!" }),
    400,
    "invalid_base64",
  ],
  [
    "base64 with whitespace is 400 invalid_base64",
    (t) => t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "aGVs bG8=" }),
    400,
    "invalid_base64",
  ],
  [
    "a ciphertext that is not base64 is 400 invalid_base64",
    (t) => t.post("/decrypt", { key_label: KEY_LABEL, ciphertext: "%%%" }),
    400,
    "invalid_base64",
  ],
  [
    "a ciphertext shorter than IV and tag is 400 invalid_ciphertext",
    (t) => t.post("/decrypt", { key_label: KEY_LABEL, ciphertext: btoa("short") }),
    400,
    "invalid_ciphertext",
  ],
  [
    "a key_id that is not hex is 400 invalid_field",
    async (t) => t.post("/decrypt", { ...(await sealed(t)), key_label: KEY_LABEL, key_id: "xyz" }),
    400,
    "invalid_field",
  ],
  [
    "a tampered ciphertext is 400 decryption_failed",
    async (t) => {
      const s = await sealed(t);
      const bytes = Uint8Array.fromBase64(s.ciphertext);
      bytes[bytes.length - 1] ^= 1;
      return t.post("/decrypt", {
        key_label: KEY_LABEL,
        key_id: s.key_id,
        ciphertext: bytes.toBase64(),
      });
    },
    400,
    "decryption_failed",
  ],
  [
    "an unknown key label on encrypt is 404 unknown_key_label",
    (t) => t.post("/encrypt", { key_label: "no-such-key", plaintext: "" }),
    404,
    "unknown_key_label",
  ],
  [
    "an unknown key label on decrypt is 404 unknown_key_label",
    async (t) =>
      t.post("/decrypt", { key_label: "no-such-key", ciphertext: (await sealed(t)).ciphertext }),
    404,
    "unknown_key_label",
  ],
  [
    "a key_id that names no key is 404 key_not_found",
    async (t) =>
      t.post("/decrypt", { ...(await sealed(t)), key_label: KEY_LABEL, key_id: "00".repeat(16) }),
    404,
    "key_not_found",
  ],
  [
    "a body over the size limit is 413 body_too_large",
    (t) => t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "A".repeat(70_000) }),
    413,
    "body_too_large",
  ],
  [
    "a streamed body over the limit (no content-length) is 413",
    (t) =>
      t.fetch("/encrypt", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: ReadableStream.from([
          new TextEncoder().encode('{"plaintext":"'),
          new Uint8Array(70_000).fill(65),
        ]),
      }).then(read),
    413,
    "body_too_large",
  ],
  [
    "a non-JSON content type is 415 unsupported_media_type",
    (t) =>
      t.fetch("/encrypt", { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" })
        .then(read),
    415,
    "unsupported_media_type",
  ],
  [
    "GET on /encrypt is 405 method_not_allowed",
    (t) => t.get("/encrypt"),
    405,
    "method_not_allowed",
  ],
  [
    "POST on /pool/stats is 405 method_not_allowed",
    (t) => t.post("/pool/stats", {}),
    405,
    "method_not_allowed",
  ],
  ["an unknown path is 404 not_found", (t) => t.get("/nope"), 404, "not_found"],
  [
    "/encrypt-per-request is 404 unless turned on",
    (t) => t.post("/encrypt-per-request", { key_label: KEY_LABEL, plaintext: "" }),
    404,
    "not_found",
  ],
];

async function read(response: Response): Promise<JsonReply> {
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON: the assertion says so */ }
  return { status: response.status, headers: response.headers, text, body };
}

Deno.test("every bad input gets its status code and leaves the pool whole", async (ctx) => {
  // 64 KiB of data fits the limit as base64 (87 KiB); 70 000 base64 chars plus JSON do not fit 70 000.
  await using t = await startTestService(["--max-body-bytes", "70000"]);
  for (const [name, send, status, code] of cases) {
    await ctx.step(name, async () => {
      assertJsonError(await send(t), status, code);
      await assertPoolWhole(t);
    });
  }
});

Deno.test("405 names the allowed methods in Allow", async () => {
  await using t = await startTestService();
  assert.equal((await t.get("/encrypt")).headers.get("allow"), "POST");
  assert.equal((await t.post("/metrics", {})).headers.get("allow"), "GET, HEAD");
});

Deno.test("pool exhaustion is 503 pool_exhausted with Retry-After and the pool stays whole", async () => {
  await using t = await startTestService(["--pool-max", "1", "--acquire-timeout-ms", "50"]);
  const lease = await t.service.hsm.acquire();
  try {
    const reply = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });
    assertJsonError(reply, 503, "pool_exhausted");
    assert.match(reply.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
  } finally {
    await lease.release();
  }
  await assertPoolWhole(t);
  assert.equal((await t.poolStats()).timed_out, 1);
});

Deno.test("too many waiting requests is 503 pool_overloaded with Retry-After", async () => {
  await using t = await startTestService([
    "--pool-max",
    "1",
    "--max-waiting",
    "1",
    "--acquire-timeout-ms",
    "60000",
  ]);
  const lease = await t.service.hsm.acquire();
  const waiting = t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });
  try {
    await eventually("one request waiting", async () => (await t.poolStats()).pending === 1);
    const reply = await t.post("/encrypt", { key_label: KEY_LABEL, plaintext: "" });
    assertJsonError(reply, 503, "pool_overloaded");
    assert.match(reply.headers.get("retry-after") ?? "", /^[1-9]\d*$/);
  } finally {
    await lease.release();
  }
  assert.equal((await waiting).status, 200);
  await assertPoolWhole(t);
});
