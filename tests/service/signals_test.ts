import assert from "node:assert/strict";
import { type ServedChild, serveOnTempToken } from "./child_service.ts";
import { eventually, KEY_LABEL, TEST_PIN } from "./fixture.ts";
import { RawClient, requestHead } from "./raw_http.ts";

const IN_FLIGHT = 10;

/** Requests in flight: each sent its head and half its body, and waits for the test to finish it. */
async function holdRequests(child: ServedChild, count: number) {
  const body = (i: number) =>
    JSON.stringify({ key_label: KEY_LABEL, plaintext: btoa(`held ${i}`) });
  const clients = await Promise.all(Array.from({ length: count }, async (_, i) => {
    const client = await RawClient.connect(child.url);
    const text = body(i);
    await client.send(requestHead("POST", "/encrypt", { length: text.length }));
    await client.send(text.slice(0, 10));
    return { client, rest: text.slice(10) };
  }));
  await eventually(`${count} requests in flight`, async () => {
    const metrics = await (await fetch(`${child.url}/metrics`)).text();
    const m = /^secret_manager_http_requests_in_flight (\d+)$/m.exec(metrics);
    return Number(m?.[1]) === count + 1; // plus this /metrics request
  });
  return {
    clients: clients.map((c) => c.client),
    /** Sends the rest of every body and reads every answer. */
    finish: () =>
      Promise.all(clients.map(async ({ client, rest }) => {
        await client.send(rest);
        return await client.readResponse();
      })),
  };
}

/** Waits for the drain to start (the service's log says so). */
function draining(child: ServedChild): Promise<void> {
  return eventually(
    "the service drains",
    () => child.lines.some((l) => l.includes("shutting down")),
  );
}

for (
  const [how, send] of [
    ["Ctrl-C (SIGINT) to the process group", (c: ServedChild) => c.killGroup("SIGINT")],
    ["SIGTERM to the process group", (c: ServedChild) => c.killGroup("SIGTERM")],
    ["SIGTERM to the deno task runner only", (c: ServedChild) => c.kill("SIGTERM")],
    ["SIGTERM to the service only", (c: ServedChild) => c.killService("SIGTERM")],
  ] as const
) {
  Deno.test(`${how} drains: requests in flight finish, new ones get 503, exit 0`, async () => {
    await using child = await serveOnTempToken();
    const held = await holdRequests(child, IN_FLIGHT);
    try {
      send(child);
      await draining(child);
      const late = await fetch(`${child.url}/encrypt`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ key_label: KEY_LABEL, plaintext: "" }),
      });
      assert.equal(late.status, 503);
      assert.equal((await late.json()).error, "shutting_down");
      assert.equal(late.headers.get("retry-after"), "1");

      const answers = await held.finish();
      const { code, stderr } = await child.exited();
      for (const answer of answers) assert.equal(answer.status, 200, `${answer.body}\n${stderr}`);
      assert.equal(code, 0, stderr);
      assert.match(stderr, /"stopped"/);
      assert.doesNotMatch(stderr, /second signal/);
      assert.ok(!stderr.includes(TEST_PIN));
    } finally {
      for (const client of held.clients) client.close();
    }
  });
}

Deno.test("a second Ctrl-C, pressed after the first, exits at once with 130", async () => {
  await using child = await serveOnTempToken();
  const held = await holdRequests(child, 1);
  try {
    child.killGroup("SIGINT");
    await draining(child);
    // A person's second press comes well after the first one's copies.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    child.killGroup("SIGINT");
    const { code, stderr } = await child.exited();
    assert.equal(code, 130, stderr);
    assert.match(stderr, /second signal/);
    assert.equal(await held.clients[0].readToEnd(), "", "the held request got no answer");
  } finally {
    for (const client of held.clients) client.close();
  }
});
