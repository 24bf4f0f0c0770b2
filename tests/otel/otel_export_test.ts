import { test } from "../pool/sanitized.ts";
import assert from "node:assert/strict";
import { type MetricPoint, OtlpReceiver } from "./otlp_receiver.ts";

const PROGRAM = new URL("./fixtures/known_work.ts", import.meta.url).pathname;
const TIMINGS_THEN_EXIT = new URL("./fixtures/timings_then_exit.ts", import.meta.url).pathname;
const OFF_EVENT_LOOP = new URL("./fixtures/records_off_event_loop.ts", import.meta.url).pathname;
const USER_TESTS = new URL("./fixtures/instrumented_user_tests.ts", import.meta.url).pathname;
const POOL = { "db.client.connection.pool.name": "otel-e2e" };

/** Runs the known-work program against a fresh receiver; `read` gets the export. */
async function withExport(read: (r: OtlpReceiver) => void | Promise<void>): Promise<void> {
  await using receiver = OtlpReceiver.start();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-no-legacy-abort", PROGRAM],
    env: receiver.env(200),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  try {
    await receiver.waitFor(
      () => {
        const pending = receiver.latest("db.client.connection.pending_requests");
        const waits = receiver.latest("db.client.connection.wait_time");
        return pending[0]?.value === 1 && waits[0]?.count === 7;
      },
      30_000,
      "the program's final state",
    );
    await read(receiver);
  } finally {
    await child.stdin.close();
    const { code, stderr } = await output;
    assert.equal(code, 0, new TextDecoder().decode(stderr));
  }
}

function only(r: OtlpReceiver, name: string, attributes: Record<string, string> = POOL) {
  const points = r.latest(name).filter((p) =>
    JSON.stringify(Object.entries(p.attributes).sort()) ===
      JSON.stringify(Object.entries(attributes).sort())
  );
  assert.equal(points.length, 1, `one ${name} point with ${JSON.stringify(attributes)}`);
  return points[0];
}

function assertInstrument(p: MetricPoint, unit: string, kind: MetricPoint["kind"]) {
  assert.equal(p.unit, unit, `${p.name} unit`);
  assert.equal(p.kind, kind, `${p.name} kind`);
  assert.equal(p.scope, "@poolkit/pool", `${p.name} scope`);
  assert.notEqual(p.description, "", `${p.name} description`);
}

test("OTEL_DENO exports every pool metric with the conventions' names, units, attributes and values", async () => {
  await withExport((r) => {
    const idle = only(r, "db.client.connection.count", {
      ...POOL,
      "db.client.connection.state": "idle",
    });
    const used = only(r, "db.client.connection.count", {
      ...POOL,
      "db.client.connection.state": "used",
    });
    for (const p of [idle, used]) {
      assertInstrument(p, "{connection}", "sum");
      assert.equal(p.monotonic, false, "count is an up-down counter");
    }
    assert.equal(idle.value, 0);
    assert.equal(used.value, 1);

    const gauges: [string, string, number][] = [
      ["db.client.connection.idle.max", "{connection}", 1],
      ["db.client.connection.idle.min", "{connection}", 0],
      ["db.client.connection.max", "{connection}", 1],
      ["db.client.connection.pending_requests", "{request}", 1],
    ];
    for (const [name, unit, value] of gauges) {
      const p = only(r, name);
      assertInstrument(p, unit, "sum");
      assert.equal(p.monotonic, false, `${name} is an up-down counter`);
      assert.equal(p.value, value, name);
    }

    const timeouts = only(r, "db.client.connection.timeouts");
    assertInstrument(timeouts, "{timeout}", "sum");
    assert.equal(timeouts.monotonic, true, "timeouts is a counter");
    assert.equal(timeouts.value, 1);

    const create = only(r, "db.client.connection.create_time");
    assertInstrument(create, "s", "histogram");
    assert.equal(create.count, 1);
    assert.ok(create.min! >= 0.019, `create took the 20 ms the factory sleeps: ${create.min}`);

    const wait = only(r, "db.client.connection.wait_time");
    assertInstrument(wait, "s", "histogram");
    assert.equal(wait.count, 7, "7 acquires were served (the timed-out one is not)");
    assert.ok(
      wait.max! >= 0.039,
      `the last waiter waited the 40 ms the lease was held: ${wait.max}`,
    );

    const use = only(r, "db.client.connection.use_time");
    assertInstrument(use, "s", "histogram");
    assert.equal(use.count, 6, "6 leases ended; the 7th is still held");
    assert.ok(
      use.max! >= 0.069,
      `the held lease was out for the 30 ms timeout and 40 ms: ${use.max}`,
    );
  });
});

test("the histograms use the Prometheus export's buckets, in seconds, and add up", async () => {
  await withExport((r) => {
    for (const name of ["create_time", "wait_time", "use_time"]) {
      const p = only(r, `db.client.connection.${name}`);
      assert.deepEqual(
        p.bounds,
        [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        name,
      );
      assert.equal(p.bucketCounts!.reduce((a, b) => a + b, 0), p.count, `${name} buckets`);
      assert.ok(p.min! <= p.max! && p.sum! >= p.min! * p.count!, `${name} sum, min, max`);
    }
  });
});

test("exactly the nine conventional pool metrics are exported", async () => {
  await withExport((r) => {
    const ours = [...r.names()].filter((n) => n.startsWith("db.client.connection."));
    assert.deepEqual(ours.sort(), [
      "db.client.connection.count",
      "db.client.connection.create_time",
      "db.client.connection.idle.max",
      "db.client.connection.idle.min",
      "db.client.connection.max",
      "db.client.connection.pending_requests",
      "db.client.connection.timeouts",
      "db.client.connection.use_time",
      "db.client.connection.wait_time",
    ]);
  });
});

/**
 * Runs `fixture` with `args` to its end, collected only at exit; returns what it printed and
 * the exported histograms of the pool named `poolName`.
 */
async function histogramsAtExit(fixture: string, args: string[], poolName: string) {
  await using receiver = OtlpReceiver.start();
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...args.slice(0, -1), fixture, args.at(-1)!],
    env: receiver.env(60_000), // no periodic collection: only the exit flush
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  await receiver.waitFor(
    () => receiver.latest("db.client.connection.use_time").length > 0,
    10_000,
    "use_time",
  );
  const pool = { "db.client.connection.pool.name": poolName };
  return {
    printed: new TextDecoder().decode(stdout),
    wait: only(receiver, "db.client.connection.wait_time", pool),
    use: only(receiver, "db.client.connection.use_time", pool),
    create: only(receiver, "db.client.connection.create_time", pool),
  };
}

/** Runs `timings_then_exit.ts n` to its end; returns its wait_time and use_time points. */
const timingsAtExit = (n: number) =>
  histogramsAtExit(TIMINGS_THEN_EXIT, ["-A", String(n)], "timings");

test("timings counted just before exit are exported at exit", async () => {
  const { wait, use } = await timingsAtExit(3);
  assert.equal(wait.count, 3);
  assert.equal(use.count, 3);
});

test("many timings are exported once each, whether flushed by their timer or at exit", async () => {
  const { wait, use } = await timingsAtExit(10_000);
  assert.equal(wait.count, 10_000);
  assert.equal(use.count, 10_000);
  assert.equal(wait.bucketCounts!.reduce((a, b) => a + b, 0), 10_000);
});

/** Runs `records_off_event_loop.ts` with `permissions`; what it counted, and its export. */
async function leasesCountedOnTheEventLoop(permissions: string[]) {
  const { printed, wait, use, create } = await histogramsAtExit(
    OFF_EVENT_LOOP,
    [...permissions, "2000"],
    "off-loop",
  );
  const { recordedHere } = JSON.parse(printed) as { recordedHere: number };
  return { recordedHere, wait: wait.count, use: use.count, create: create.count };
}

test("with Deno's exporter, the histograms are recorded off the event loop's thread, exactly", async () => {
  const seen = await leasesCountedOnTheEventLoop(["-A"]);
  assert.deepEqual(seen, { recordedHere: 0, wait: 2000, use: 2000, create: 1 });
});

test("without read access for the recording thread, the histograms are recorded on the event loop, exactly", async () => {
  const seen = await leasesCountedOnTheEventLoop([]);
  assert.deepEqual(seen, { recordedHere: 4001, wait: 2000, use: 2000, create: 1 });
});

test("with OTEL_DENO on, a user's sanitized tests of an instrumented pool pass", async () => {
  await using receiver = OtlpReceiver.start();
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--no-check", USER_TESTS],
    env: receiver.env(200),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const output = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, output);
  assert.match(output, /2 passed \| 0 failed/);
});
