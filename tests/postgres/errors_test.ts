/**
 * How the adapter classifies and words failures. No server needed: these are the rules the
 * pool's `isFatal` and the error messages follow.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool, PostgresConnectionError } from "../../adapters/postgres/mod.ts";
import { isConnectionFailure, isPermanentConnectError } from "../../adapters/postgres/errors.ts";

Deno.test("an invalid connection URL is reported without echoing it (it may hold a password)", () => {
  assert.throws(
    () => createPostgresPool({ url: "postgres://app:sekrit@db:not-a-port/shop" }),
    (error: Error) => error instanceof TypeError && !error.message.includes("sekrit"),
  );
});

Deno.test("no URL and no DATABASE_URL is a clear error naming both", () => {
  const saved = Deno.env.get("DATABASE_URL");
  Deno.env.delete("DATABASE_URL");
  try {
    assert.throws(() => createPostgresPool(), /DATABASE_URL/);
  } finally {
    if (saved !== undefined) Deno.env.set("DATABASE_URL", saved);
  }
});

Deno.test("connection-level failures are recognised as fatal", () => {
  const fatal = [
    Object.assign(new Error("write CONNECTION_CLOSED 127.0.0.1:5432"), {
      code: "CONNECTION_CLOSED",
    }),
    Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
    Object.assign(new Error("terminating connection due to administrator command"), {
      code: "57P01",
      severity: "FATAL",
    }),
    Object.assign(new Error("connection failure"), { code: "08006" }),
    Object.assign(new Error("anything"), { code: "XX000", severity: "FATAL" }),
    new PostgresConnectionError("lost", "CONNECTION_CLOSED"),
    new Error("wrapped", { cause: Object.assign(new Error("reset"), { code: "ECONNRESET" }) }),
    new Deno.errors.ConnectionReset("reset by peer"),
  ];
  for (const error of fatal) assert.equal(isConnectionFailure(error), true, String(error));
});

Deno.test("statement-level errors leave the connection usable", () => {
  const usable = [
    Object.assign(new Error("duplicate key value"), { code: "23505", severity: "ERROR" }),
    Object.assign(new Error("syntax error"), { code: "42601", severity: "ERROR" }),
    Object.assign(new Error("canceling statement due to user request"), {
      code: "57014",
      severity: "ERROR",
    }),
    Object.assign(new Error("could not serialize access"), { code: "40001", severity: "ERROR" }),
    new Error("plain application error"),
    "a string",
    undefined,
  ];
  for (const error of usable) assert.equal(isConnectionFailure(error), false, String(error));
});

Deno.test("query(text, params) with params that are not an array is a TypeError naming them and the right call", async () => {
  await using pg = createPostgresPool({ url: "postgres://app@127.0.0.1:1/none" });
  for (const params of [5, "abc", { signal: AbortSignal.timeout(1_000) }]) {
    await assert.rejects(
      pg.query("select $1", params as never),
      (error: Error) =>
        error instanceof TypeError && /params must be an array/.test(error.message) &&
        error.message.includes("query(text, [], { signal })"),
      `params ${Deno.inspect(params)}`,
    );
  }
  await assert.rejects(pg.query("select 1", [], 5 as never), /options must be an object/);
  await assert.rejects(pg.query("select 1", [], { timeoutMs: -1 }), /timeoutMs must be/);
  assert.equal(pg.stats().created, 0, "nothing reached the database");
});

Deno.test("an unknown reset policy is a TypeError naming the choices", () => {
  assert.throws(
    () =>
      createPostgresPool({ url: "postgres://app@127.0.0.1:1/none", reset: "sometimes" as never }),
    /reset must be "always" or "never", got string "sometimes"/,
  );
});

Deno.test("an unknown option is a TypeError naming it and the nearest known one", async () => {
  const url = "postgres://app@127.0.0.1:1/none";
  const refused: [() => unknown, RegExp][] = [
    [
      () => createPostgresPool({ url, pool: { mx: 5 } } as never),
      /'pool\.mx' is not an option; did you mean 'pool\.max'\?/,
    ],
    [
      () => createPostgresPool({ url, rest: "never" } as never),
      /'rest' is not an option; did you mean 'reset'\?/,
    ],
    [
      () => createPostgresPool({ url, conect_timeout: 1 } as never),
      /did you mean 'connect_timeout'/,
    ],
    [
      () => createPostgresPool({ url, pool: { breaker: { treshold: 1 } } } as never),
      /'pool\.breaker\.treshold' is not an option; did you mean 'pool\.breaker\.threshold'\?/,
    ],
  ];
  for (const [create, message] of refused) {
    assert.throws(create, (e: Error) => e instanceof TypeError && message.test(e.message));
  }
  await using pg = createPostgresPool({ url });
  await assert.rejects(
    pg.query("select 1", [], { timeout: 5 } as never),
    /'timeout' is not an option; did you mean 'timeoutMs'\?/,
  );
  await assert.rejects(
    pg.transaction(() => {}, { isolaton: "serializable" } as never),
    /did you mean 'isolation'/,
  );
  assert.throws(
    () => pg.with({ deadlineMs: 5 } as never),
    /'deadlineMs' is not an option; the options are 'timeoutMs', 'signal'/,
  );
  assert.equal(pg.stats().created, 0, "nothing reached the database");
});

Deno.test("wrong password, unknown role and unknown database are permanent connect errors; a full server (53300) is not", () => {
  for (const code of ["28P01", "28000", "3D000"]) {
    const error = new PostgresConnectionError("cannot connect", code);
    assert.equal(isPermanentConnectError(error), true, code);
  }
  for (const code of ["ECONNREFUSED", "57P03", "CONNECT_TIMEOUT", "53300"]) {
    assert.equal(isPermanentConnectError(new PostgresConnectionError("x", code)), false, code);
  }
});
