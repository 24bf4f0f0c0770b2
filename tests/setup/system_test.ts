/**
 * The setup task's system step: missing packages are found all at once and installed in one
 * apt-get step saying what and why; a user who cannot install gets one message with the exact
 * command. The installer and apt-get are replaced here (never run for real in tests); the
 * project's real requirement list is checked against this machine.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Requirement, REQUIREMENTS } from "../../tasks/setup/requirements.ts";
import { ensureSystemPackages, installCommand, SetupError } from "../../tasks/setup/system.ts";

/** Requirements named `names`, missing until `installed` holds their package. */
function fakeRequirements(names: string[], installed = new Set<string>()): Requirement[] {
  return names.map((pkg) => ({
    pkg,
    why: `the ${pkg} tool`,
    neededFor: ["test"],
    present: () => installed.has(pkg),
  }));
}

Deno.test("on this machine nothing the suite needs is missing, so setup runs no command", async () => {
  const ran: string[][] = [];
  const installed = await ensureSystemPackages("test", {
    run: (argv) => {
      ran.push(argv);
      return Promise.resolve(1);
    },
    log: () => {},
  });
  const missing = REQUIREMENTS.filter((r) => !r.present()).map((r) => r.pkg);
  assert.deepEqual(missing, [], "the suite's packages are installed here");
  assert.deepEqual(installed, []);
  assert.deepEqual(ran, []);
});

Deno.test("without a way to install, one message lists everything missing and the exact command", async () => {
  const requirements = fakeRequirements(["softhsm2", "postgresql", "pgbouncer"]);
  const error = await ensureSystemPackages("test", {
    requirements,
    installer: { kind: "none", reason: "you are not root and sudo is not here" },
    log: () => assert.fail("nothing is logged before the message"),
    run: () => assert.fail("nothing is run"),
  }).then(() => assert.fail("must stop"), (e: unknown) => e);
  assert.ok(error instanceof SetupError);
  for (const r of requirements) assert.match(error.message, new RegExp(`${r.pkg}\\s+${r.why}`));
  assert.ok(
    error.message.includes(
      "sudo apt-get update && sudo apt-get install -y --no-install-recommends " +
        "softhsm2 postgresql pgbouncer",
    ),
  );
  assert.match(error.message, /you are not root and sudo is not here/);
  assert.match(
    error.message,
    /DATABASE_URL=postgres:\/\//,
    "postgresql missing: names the way out",
  );
});

Deno.test("as root, every missing package is installed in one apt-get step, saying what and why", async () => {
  const installed = new Set<string>();
  const ran: string[][] = [];
  const lines: string[] = [];
  const result = await ensureSystemPackages("test", {
    requirements: [...fakeRequirements(["a-tool", "b-tool"], installed)],
    installer: { kind: "root" },
    log: (line) => lines.push(line),
    run: (argv) => {
      ran.push(argv);
      if (argv.includes("install")) { for (const p of ["a-tool", "b-tool"]) installed.add(p); }
      return Promise.resolve(0);
    },
  });
  assert.deepEqual(result, ["a-tool", "b-tool"]);
  assert.deepEqual(ran, [
    ["apt-get", "update", "-q"],
    ["apt-get", "install", "-y", "-q", "--no-install-recommends", "a-tool", "b-tool"],
  ]);
  const text = lines.join("\n");
  assert.match(text, /a-tool\s+the a-tool tool/);
  assert.match(text, /b-tool\s+the b-tool tool/);
});

Deno.test("with sudo, apt-get runs through sudo with a non-interactive frontend", async () => {
  const installed = new Set<string>();
  const ran: string[][] = [];
  await ensureSystemPackages("test", {
    requirements: fakeRequirements(["a-tool"], installed),
    installer: { kind: "sudo" },
    log: () => {},
    run: (argv) => {
      ran.push(argv);
      installed.add("a-tool");
      return Promise.resolve(0);
    },
  });
  for (const argv of ran) {
    assert.deepEqual(argv.slice(0, 3), ["sudo", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
  }
});

Deno.test("when sudo is refused, the message lists everything missing and the exact command", async () => {
  const error = await ensureSystemPackages("test", {
    requirements: fakeRequirements(["a-tool", "b-tool"]),
    installer: { kind: "sudo" },
    log: () => {},
    run: () => Promise.resolve(1), // "user is not in the sudoers file"
  }).then(() => assert.fail("must stop"), (e: unknown) => e);
  assert.ok(error instanceof SetupError);
  assert.match(error.message, /`sudo apt-get update -q` failed \(exit 1\)/);
  assert.match(error.message, /a-tool\s+the a-tool tool\n\s+b-tool\s+the b-tool tool/);
  assert.ok(
    error.message.includes("sudo apt-get install -y --no-install-recommends a-tool b-tool"),
  );
});

Deno.test("a failed apt-get stops setup, naming the command and its exit code", async () => {
  const error = await ensureSystemPackages("test", {
    requirements: fakeRequirements(["a-tool"]),
    installer: { kind: "root" },
    log: () => {},
    run: (argv) => Promise.resolve(argv.includes("install") ? 100 : 0),
  }).then(() => assert.fail("must stop"), (e: unknown) => e);
  assert.ok(error instanceof SetupError);
  assert.match(error.message, /apt-get install .*a-tool` failed \(exit 100\)/);
});

Deno.test("a package still missing after apt-get is an error naming it", async () => {
  const error = await ensureSystemPackages("test", {
    requirements: fakeRequirements(["a-tool"]),
    installer: { kind: "root" },
    log: () => {},
    run: () => Promise.resolve(0), // "installs", but the check still fails
  }).then(() => assert.fail("must stop"), (e: unknown) => e);
  assert.ok(error instanceof SetupError);
  assert.match(error.message, /still missing after apt-get install:\n\s+a-tool/);
});

Deno.test("a job asks only for what it needs: the demo does not need PgBouncer", async () => {
  const requirements: Requirement[] = [
    { pkg: "pgbouncer", why: "tests", neededFor: ["test"], present: () => false },
  ];
  const ran: string[][] = [];
  const result = await ensureSystemPackages("demo", {
    requirements,
    installer: { kind: "root" },
    run: (argv) => (ran.push(argv), Promise.resolve(0)),
  });
  assert.deepEqual(result, []);
  assert.deepEqual(ran, []);
});

Deno.test("the install command is one apt-get update and install, through sudo when not root", () => {
  assert.equal(
    installCommand(["softhsm2", "pgbouncer"], true),
    "sudo apt-get update && sudo apt-get install -y --no-install-recommends softhsm2 pgbouncer",
  );
  assert.equal(
    installCommand(["softhsm2"], false),
    "apt-get update && apt-get install -y --no-install-recommends softhsm2",
  );
});

Deno.test("with DATABASE_URL set, the PostgreSQL server is not required", () => {
  const postgresql = REQUIREMENTS.find((r) => r.pkg === "postgresql")!;
  const saved = Deno.env.get("DATABASE_URL");
  Deno.env.set("DATABASE_URL", "postgres://u:p@db.example:5432/app");
  try {
    assert.equal(postgresql.present(), true);
  } finally {
    if (saved === undefined) Deno.env.delete("DATABASE_URL");
    else Deno.env.set("DATABASE_URL", saved);
  }
});
