import assert from "node:assert/strict";
import { ConfigError, describeConfig, loadConfig } from "../../service/config.ts";

const PIN = { PKCS11_PIN: "config-test-pin" };

Deno.test("defaults serve the private test token on 127.0.0.1:8080 with 4 sessions", () => {
  const c = loadConfig([], PIN);
  assert.equal(c.host, "127.0.0.1");
  assert.equal(c.port, 8080);
  assert.deepEqual(c.tokens, [{ label: "TestToken" }]);
  assert.equal(c.poolMax, 4);
  assert.equal(c.perRequest, false);
  assert.deepEqual(c.ensureKeys, ["default"]);
});

Deno.test("flags win over environment variables", () => {
  const c = loadConfig(["--port", "9000", "--pool-max", "8"], {
    ...PIN,
    PORT: "7000",
    POOL_MAX: "2",
  });
  assert.equal(c.port, 9000);
  assert.equal(c.poolMax, 8);
});

Deno.test("environment variables configure what flags do not", () => {
  const c = loadConfig([], {
    ...PIN,
    PORT: "7000",
    PKCS11_TOKEN_LABEL: "Other",
    PKCS11_MODULE: "/x.so",
    ENSURE_KEYS: "a, b",
  });
  assert.equal(c.port, 7000);
  assert.deepEqual(c.tokens, [{ label: "Other" }]);
  assert.equal(c.module, "/x.so");
  assert.deepEqual(c.ensureKeys, ["a", "b"]);
});

Deno.test("a bad number names the flag or variable it came from", () => {
  assert.throws(() => loadConfig(["--pool-max", "lots"], PIN), /--pool-max .*"lots"/);
  assert.throws(() => loadConfig([], { ...PIN, PORT: "-1" }), /PORT .*"-1"/);
  assert.throws(() => loadConfig(["--port", "70000"], PIN), ConfigError);
});

Deno.test("pool min above max is refused with the fix", () => {
  assert.throws(() => loadConfig(["--pool-min", "5", "--pool-max", "2"], PIN), /lower --pool-min/);
});

Deno.test("an unknown flag is refused with the usage text", () => {
  assert.throws(() => loadConfig(["--prot", "1"], PIN), /usage: deno task serve/);
});

Deno.test("a missing PKCS11_PIN is refused and there is no PIN flag", () => {
  assert.throws(() => loadConfig([], {}), /PKCS11_PIN is not set/);
  assert.throws(() => loadConfig(["--pin", "1234"], {}), ConfigError);
});

Deno.test("the loggable description of the config leaves the PIN and database URL out", () => {
  const c = loadConfig([], { ...PIN, DATABASE_URL: "postgres://u:db-secret@h/d" });
  const text = JSON.stringify(describeConfig(c));
  assert.ok(!text.includes(PIN.PKCS11_PIN));
  assert.ok(!text.includes("db-secret"));
});

Deno.test("body timeout, TCP backlog and drain timeout come from flags or environment, and 0 is refused", () => {
  const defaults = loadConfig([], PIN);
  assert.equal(defaults.bodyTimeoutMs, 10_000);
  assert.equal(defaults.tcpBacklog, 511);
  assert.equal(defaults.drainTimeoutMs, 10_000);
  const c = loadConfig(["--body-timeout-ms", "500", "--drain-timeout-ms", "30000"], {
    ...PIN,
    TCP_BACKLOG: "64",
  });
  assert.equal(c.bodyTimeoutMs, 500);
  assert.equal(c.tcpBacklog, 64);
  assert.equal(c.drainTimeoutMs, 30_000);
  assert.throws(() => loadConfig(["--body-timeout-ms", "0"], PIN), /raise --body-timeout-ms/);
  assert.throws(() => loadConfig(["--tcp-backlog", "0"], PIN), /raise --tcp-backlog/);
});

Deno.test("several tokens come from repeated --token flags, each LABEL or LABEL@MODULE", () => {
  const c = loadConfig(["--token", "hsm-a", "--token", "hsm-b@/opt/hsm/b.so"], PIN);
  assert.deepEqual(c.tokens, [{ label: "hsm-a" }, { label: "hsm-b", module: "/opt/hsm/b.so" }]);
});

Deno.test("several tokens come from PKCS11_TOKEN_LABELS, comma-separated", () => {
  const c = loadConfig([], { ...PIN, PKCS11_TOKEN_LABELS: "hsm-a, hsm-b" });
  assert.deepEqual(c.tokens, [{ label: "hsm-a" }, { label: "hsm-b" }]);
});

Deno.test("a token given twice, an empty label or both token variables are refused with the fix", () => {
  assert.throws(
    () => loadConfig(["--token", "hsm-a", "--token", "hsm-a"], PIN),
    /token "hsm-a" is given twice: name each token once/,
  );
  assert.throws(() => loadConfig([], { ...PIN, PKCS11_TOKEN_LABELS: "a,,b" }), /token label/);
  assert.throws(
    () => loadConfig([], { ...PIN, PKCS11_TOKEN_LABELS: "a,b", PKCS11_TOKEN_LABEL: "a" }),
    /keep one/,
  );
});
