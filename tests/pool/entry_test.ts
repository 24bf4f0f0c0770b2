import { test } from "./sanitized.ts";
import assert from "node:assert/strict";
import { CHECKING, Entry, IDLE, IN_USE, REMOVED, VALIDATING } from "../../pool/entry.ts";

const entry = () => new Entry(1, "resource", 0, Infinity, 0);

test("an entry goes idle → in use → idle, stamping its times", () => {
  const e = entry();
  assert.equal(e.state, IDLE);
  assert.equal(e.lend(10, undefined), 1, "the first lease");
  assert.equal(e.lease, 1);
  assert.equal(e.state, IN_USE);
  assert.equal(e.acquiredAt, 10);
  e.endLease();
  assert.equal(e.lease, 0);
  e.returned(20);
  assert.equal(e.state, IDLE);
  assert.equal(e.idleSince, 20);
  assert.equal(e.uses, 1);
});

test("an entry cannot be lent twice", () => {
  const e = entry();
  e.lend(0, undefined);
  assert.throws(() => e.lend(0, undefined), /resource 1 is in use/);
});

test("only an idle entry can be taken for a check, and a checked one goes back idle", () => {
  const e = entry();
  e.startCheck(VALIDATING);
  assert.throws(() => e.startCheck(CHECKING), /is validating/);
  e.checked(5);
  assert.equal(e.state, IDLE);
  assert.equal(e.checkedAt, 5);
});

test("a removed entry stays removed and leaves no other way", () => {
  const e = entry();
  assert.equal(e.remove(), true);
  assert.equal(e.remove(), false);
  assert.equal(e.state, REMOVED);
  assert.throws(() => e.lend(0, undefined), /is removed/);
  assert.throws(() => e.returned(0), /is removed/);
});
