import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { Pool } from "../../mod.ts";
import { EventHub } from "../../pool/events.ts";
import { FakeFactory } from "./fake.ts";

test("a stream returned before its first next() unsubscribes at once", async () => {
  const hub = new EventHub<number>();
  const stream = hub.subscribe(1024);
  assert.equal(hub.size, 1);
  await stream.return?.();
  assert.equal(hub.size, 0);
  assert.equal(hub.active, false);
  hub.emit(1);
  assert.deepEqual(await stream.next(), { done: true, value: undefined });
});

test("a for-await loop that breaks unsubscribes its stream", async () => {
  const hub = new EventHub<number>();
  const stream = hub.subscribe(1024);
  hub.emit(1);
  for await (const _ of stream) break;
  assert.equal(hub.size, 0);
});

test("a pool's stream ends once returned, whatever happens next", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  const stream = pool.events();
  await stream.return?.();
  await pool.use(() => {});
  assert.deepEqual(await stream.next(), { done: true, value: undefined });
});

test("a stream whose signal aborts ends after its buffered events", async () => {
  await using pool = new Pool({ ...new FakeFactory().hooks });
  const controller = new AbortController();
  const stream = pool.events({ signal: controller.signal });
  await pool.use(() => {});
  controller.abort();
  await pool.use(() => {});
  const types = [];
  for await (const event of stream) types.push(event.type);
  assert.deepEqual(types, ["create", "acquire", "release"]);
});

test("a dropped stream is unsubscribed once it is garbage collected", async () => {
  const script = `
    import { EventHub } from ${
    JSON.stringify(new URL("../../pool/events.ts", import.meta.url).href)
  };
    const hub = new EventHub();
    hub.subscribe(1024);
    const before = hub.size;
    for (let i = 0; i < 20 && hub.size > 0; i++) {
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    console.log(before, hub.size);`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", script],
    signal: AbortSignal.timeout(20_000),
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(output.stderr), "");
  assert.equal(new TextDecoder().decode(output.stdout).trim(), "1 0");
});
