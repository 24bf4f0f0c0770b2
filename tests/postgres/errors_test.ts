/**
 * How the adapter classifies and words failures. No server needed: these are the rules the
 * pool's `isFatal` and the error messages follow.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  createPostgresPool,
  isConnectionFailure,
  PostgresConnectionError,
} from "../../adapters/postgres/mod.ts";

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
