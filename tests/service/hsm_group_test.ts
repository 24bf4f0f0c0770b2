/**
 * The service on several tokens holding the same keys (an HSM group): members in `/pool/stats`,
 * `/healthz` degraded while one is out and unavailable when all are, `/metrics` labelled by
 * member. Members fail through the fault module in front of SoftHSM2.
 *
 * @module
 */
import assert from "node:assert/strict";
import { CKR } from "../pkcs11/group_fixture.ts";
import { parseExposition } from "../metrics/prometheus_text.ts";
import { eventually, type GroupService, startGroupService, TEST_PIN } from "./fixture.ts";

/** A member in `/pool/stats`. */
interface MemberJson {
  name: string;
  state: "up" | "out";
  token_label: string;
  missing_keys: string[];
  pool: { name: string; max_size: number };
}

/** The members in `/pool/stats`. */
async function members(t: GroupService): Promise<MemberJson[]> {
  return (await t.poolStats()).members as MemberJson[];
}

/** Encrypts under the group's key until the member named `name` is out (each call must succeed). */
async function driveOut(t: GroupService, name: string): Promise<void> {
  await eventually(`member ${name} out of rotation`, async () => {
    const reply = await t.post("/encrypt", {
      key_label: t.group.keys.aes.label,
      plaintext: btoa("x"),
    });
    assert.equal(reply.status, 200, reply.text);
    return (await members(t)).some((m) => m.name === name && m.state === "out");
  });
}

Deno.test("/pool/stats shows each member of a group with its state and its own pool", async () => {
  await using t = await startGroupService();
  const all = await members(t);
  assert.deepEqual(all.map((m) => [m.name, m.state]), [["hsm-a", "up"], ["hsm-b", "up"]]);
  for (const m of all) {
    assert.equal(m.pool.name, `hsm:${m.name}`);
    assert.equal(m.pool.max_size, 4);
    assert.deepEqual(m.missing_keys, []);
    assert.equal(m.token_label, m.name);
  }
  assert.equal((await t.poolStats()).max_size, 8, "the handle's numbers are the members' sums");
});

Deno.test("a group serves /encrypt and /decrypt on the key every member holds", async () => {
  await using t = await startGroupService();
  const label = t.group.keys.aes.label;
  const sealed = await t.post("/encrypt", { key_label: label, plaintext: btoa("shared") });
  assert.equal(sealed.status, 200, sealed.text);
  assert.equal(sealed.body.key_id, t.group.keys.aes.id);
  const opened = await t.post("/decrypt", { key_label: label, ...sealed.body });
  assert.equal(opened.status, 200, opened.text);
  assert.equal(atob(opened.body.plaintext), "shared");
});

Deno.test("/healthz is 200 degraded while one member is out, naming it and why", async () => {
  await using t = await startGroupService();
  t.group.tokens[1].faults!.set({ fail: CKR.DEVICE_REMOVED });
  await driveOut(t, "hsm-b");
  const health = await t.get("/healthz");
  assert.equal(health.status, 200, health.text);
  assert.equal(health.body.status, "degraded");
  assert.match(health.body.reason, /hsm-b \(.*CKR_DEVICE_REMOVED.*\)/);
  assert.deepEqual(
    health.body.members.map((m: { name: string; state: string }) => [m.name, m.state]),
    [["hsm-a", "up"], ["hsm-b", "out"]],
  );
  assert.ok(!health.text.includes(TEST_PIN));
});

Deno.test("/healthz and /encrypt are 503 unavailable when every member is out", async () => {
  await using t = await startGroupService();
  t.group.faults!.set({ fail: CKR.DEVICE_REMOVED });
  await eventually("every member out of rotation", async () => {
    await t.post("/encrypt", { key_label: t.group.keys.aes.label, plaintext: btoa("x") });
    return (await members(t)).every((m) => m.state === "out");
  });
  const health = await t.get("/healthz");
  assert.equal(health.status, 503, health.text);
  assert.equal(health.body.status, "unavailable");
  assert.match(health.body.reason, /every HSM member is out of rotation: hsm-a .*, hsm-b /);
  const refused = await t.post("/encrypt", { key_label: t.group.keys.aes.label, plaintext: "" });
  assert.equal(refused.status, 503, refused.text);
  assert.equal(refused.body.error, "hsm_unavailable");
  assert.ok(refused.headers.get("retry-after"));
});

Deno.test("/metrics carries one series per member, labelled member, and each member's pool", async () => {
  await using t = await startGroupService();
  t.group.tokens[1].faults!.set({ fail: CKR.DEVICE_REMOVED });
  await driveOut(t, "hsm-b");
  const families = parseExposition(await (await t.fetch("/metrics")).text());
  const byMember = (name: string) =>
    Object.fromEntries(
      families.get(name)!.samples.map((s) => [s.labels.member, s.value]),
    );
  assert.deepEqual(byMember("secret_manager_hsm_member_up"), { "hsm-a": 1, "hsm-b": 0 });
  assert.ok(byMember("secret_manager_hsm_member_errors_total")["hsm-b"] >= 1);
  assert.ok(byMember("secret_manager_hsm_member_calls_total")["hsm-a"] >= 1);
  const pools = families.get("pool_max_size")!.samples.map((s) => s.labels.pool);
  assert.deepEqual(pools, ["hsm:hsm-a", "hsm:hsm-b"]);
});
