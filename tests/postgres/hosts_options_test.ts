/**
 * The options for several hosts, as `createPostgresPool` reads them: libpq's multi-host URL,
 * `hosts`, `targetSessionAttrs` and `loadBalanceHosts`, and what a mistake in them says. No
 * server needed: a pool connects only when first used.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createPostgresPool, formatHostMetrics } from "../../adapters/postgres/mod.ts";

const URL2 = "postgres://app:sekrit@10.0.0.1:5432,10.0.0.2:5433/shop";

function hostsOf(options: Parameters<typeof createPostgresPool>[0]): string[] {
  const pg = createPostgresPool(options);
  try {
    return pg.stats().hosts.map((h) => `${h.host} ${h.role} ${h.state}`);
  } finally {
    void pg.close();
  }
}

Deno.test("a libpq multi-host URL gives each host its own port, in order, role unknown until seen", () => {
  assert.deepEqual(hostsOf({ url: URL2 }), [
    "10.0.0.1:5432 unknown up",
    "10.0.0.2:5433 unknown up",
  ]);
});

Deno.test("a host without a port in a multi-host URL gets 5432", () => {
  assert.deepEqual(
    hostsOf({ url: "postgres://app@a,b:6000/shop" }),
    ["a:5432", "b:6000"].map(
      (h) => `${h} unknown up`,
    ),
  );
});

Deno.test("the hosts option replaces the URL's host and takes strings and objects", () => {
  assert.deepEqual(
    hostsOf({
      url: "postgres://app:sekrit@localhost/shop",
      hosts: ["10.0.0.1", "10.0.0.2:5433", { host: "10.0.0.3", port: 6432 }],
    }),
    ["10.0.0.1:5432", "10.0.0.2:5433", "10.0.0.3:6432"].map((h) => `${h} unknown up`),
  );
});

Deno.test("hosts named both in a multi-host URL and in the hosts option is an error", () => {
  assert.throws(
    () => createPostgresPool({ url: URL2, hosts: ["10.0.0.3"] }),
    (e: Error) => e instanceof TypeError && /hosts are given twice/.test(e.message),
  );
});

Deno.test("an unknown targetSessionAttrs is a TypeError naming the option and every accepted value", () => {
  assert.throws(
    // @ts-expect-error: the value is what is tested
    () => createPostgresPool({ url: URL2, targetSessionAttrs: "readwrite" }),
    (e: Error) =>
      e instanceof TypeError && e.message.includes("targetSessionAttrs") &&
      e.message.includes('"read-write"') && e.message.includes('"prefer-standby"') &&
      e.message.includes("readwrite"),
  );
});

Deno.test("an unknown target_session_attrs in the URL is a TypeError naming the URL parameter", () => {
  assert.throws(
    () => createPostgresPool({ url: `${URL2}?target_session_attrs=master` }),
    (e: Error) =>
      e instanceof TypeError && e.message.includes("target_session_attrs") &&
      e.message.includes("master") && !e.message.includes("sekrit"),
  );
});

Deno.test("an unknown loadBalanceHosts is a TypeError naming the accepted values", () => {
  assert.throws(
    // @ts-expect-error: the value is what is tested
    () => createPostgresPool({ url: URL2, loadBalanceHosts: "round-robin" }),
    (e: Error) =>
      e instanceof TypeError && e.message.includes("loadBalanceHosts") &&
      e.message.includes('"disable", "random"'),
  );
});

Deno.test("the URL's target_session_attrs and the option disagreeing is an error naming both", () => {
  assert.throws(
    () =>
      createPostgresPool({
        url: `${URL2}?target_session_attrs=read-only`,
        targetSessionAttrs: "read-write",
      }),
    (e: Error) =>
      e instanceof TypeError && e.message.includes('targetSessionAttrs is "read-write"') &&
      e.message.includes('target_session_attrs is "read-only"'),
  );
});

Deno.test("the URL's parameters and the options agreeing is no error", () => {
  const pg = createPostgresPool({
    url: `${URL2}?target_session_attrs=read-write&load_balance_hosts=random`,
    targetSessionAttrs: "read-write",
    loadBalanceHosts: "random",
  });
  void pg.close();
});

Deno.test("postgres.js's own target_session_attrs option points at targetSessionAttrs", () => {
  assert.throws(
    // @ts-expect-error: no longer an option
    () => createPostgresPool({ url: URL2, target_session_attrs: "read-write" }),
    (e: Error) =>
      e instanceof TypeError && e.message.includes('{ targetSessionAttrs: "read-write" }'),
  );
});

Deno.test("a misspelled host option is a TypeError naming the nearest known option", () => {
  assert.throws(
    // @ts-expect-error: misspelled on purpose
    () => createPostgresPool({ url: URL2, targetSessionAtrs: "read-write" }),
    (e: Error) => e instanceof TypeError && e.message.includes("targetSessionAttrs"),
  );
});

Deno.test("a bad hosts entry is a TypeError naming its index", () => {
  assert.throws(
    () => createPostgresPool({ url: URL2.replace(",10.0.0.2:5433", ""), hosts: ["a", "b:x"] }),
    (e: Error) => e instanceof TypeError && e.message.includes("hosts[1]"),
  );
  assert.throws(
    // @ts-expect-error: misspelled on purpose
    () => createPostgresPool({ url: "postgres://app@localhost/shop", hosts: [{ hots: "a" }] }),
    (e: Error) => e instanceof TypeError && e.message.includes("hosts[0].host"),
  );
  assert.throws(
    () => createPostgresPool({ url: "postgres://app@localhost/shop", hosts: [] }),
    (e: Error) => e instanceof TypeError && e.message.includes("non-empty"),
  );
});

Deno.test("credentials that are not a function is a TypeError saying what it must return", () => {
  assert.throws(
    // @ts-expect-error: the value is what is tested
    () => createPostgresPool({ url: URL2, credentials: { user: "app", password: "sekrit" } }),
    (e: Error) =>
      e instanceof TypeError && e.message.includes("credentials must be a function") &&
      !e.message.includes("sekrit"),
  );
});

Deno.test("the hosts' metrics carry one series per host, labelled with the pool and host:port", () => {
  const pg = createPostgresPool({ url: URL2, pool: { name: "orders" } });
  try {
    const text = formatHostMetrics([pg]);
    const labels = 'pool="orders",host="10.0.0.2:5433"';
    assert.ok(text.includes(`pool_host_up{${labels}} 1`), text);
    assert.ok(text.includes(`pool_host_connections{${labels}} 0`), text);
    assert.ok(text.includes(`pool_host_role{${labels},role="unknown"} 1`), text);
    assert.ok(text.includes(`pool_host_role{${labels},role="primary"} 0`), text);
    assert.ok(!text.includes("sekrit"));
  } finally {
    void pg.close();
  }
});

Deno.test("a misspelled formatHostMetrics option is a TypeError naming the nearest one", () => {
  const pg = createPostgresPool({ url: URL2 });
  try {
    assert.throws(
      () => formatHostMetrics([pg], { prefx: "app" } as { prefix?: string }),
      /'prefx' is not an option; did you mean 'prefix'\?/,
    );
  } finally {
    void pg.close();
  }
});
