/**
 * The PKCS#11 fault module (tasks/setup/fault_module.ts), driven through pkcs11js directly on a
 * private SoftHSM2 with two tokens: per slot it fails, hangs, adds latency and locks the user PIN,
 * while the other slot keeps working.
 *
 * @module
 */
import assert from "node:assert/strict";
import process from "node:process";
import pkcs11js from "pkcs11js";
import { CKR, type FaultModule, openFaultModule } from "../../tasks/setup/fault_module.ts";
import { addSoftHsmToken, provisionSoftHsm, type SoftHsm } from "../../tasks/setup/softhsm.ts";

const CKF_SERIAL_RW = 0x6;
const CKU_USER = 1;
const CKM_SHA256 = 0x250;
const CKF_USER_PIN_LOCKED = 0x40000;

/** Two tokens, "fault-a" and "fault-b", behind the fault module, through one pkcs11js binding. */
interface TwoSlots extends AsyncDisposable {
  env: SoftHsm;
  faults: FaultModule;
  pkcs11: pkcs11js.PKCS11;
  a: Buffer;
  b: Buffer;
}

async function openTwoSlots(): Promise<TwoSlots> {
  const env = await provisionSoftHsm({ temporary: true, tokenLabel: "fault-a" });
  let faults: FaultModule | undefined;
  const pkcs11 = new pkcs11js.PKCS11();
  let loaded = false;
  const cleanUp = async () => {
    try {
      faults?.reset();
      if (loaded) {
        pkcs11.C_Finalize();
        pkcs11.close();
      }
    } finally {
      faults?.[Symbol.dispose]();
      await env[Symbol.asyncDispose]();
    }
  };
  try {
    await addSoftHsmToken(env, "fault-b");
    faults = await openFaultModule(env.library);
    pkcs11.load(faults.library);
    pkcs11.C_Initialize();
    loaded = true;
    const slot = (label: string) =>
      pkcs11.C_GetSlotList(true).find((s) => pkcs11.C_GetTokenInfo(s).label.trim() === label)!;
    return {
      env,
      faults,
      pkcs11,
      a: slot("fault-a"),
      b: slot("fault-b"),
      [Symbol.asyncDispose]: cleanUp,
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

/** The CKR name a call failed with, or "CKR_OK". */
function ckrOf(call: () => unknown): string {
  try {
    call();
    return "CKR_OK";
  } catch (error) {
    return /CKR_\w+/.exec(String((error as Error).message))?.[0] ?? String(error);
  }
}

function login(t: TwoSlots, slot: Buffer, pin: string): string {
  const session = t.pkcs11.C_OpenSession(slot, CKF_SERIAL_RW);
  try {
    return ckrOf(() => t.pkcs11.C_Login(session, CKU_USER, pin));
  } finally {
    t.pkcs11.C_CloseSession(session);
  }
}

Deno.test("a slot set to fail answers every call with the code, and the other slot keeps working", async () => {
  await using t = await openTwoSlots();
  const onA = t.pkcs11.C_OpenSession(t.a, CKF_SERIAL_RW);
  const onB = t.pkcs11.C_OpenSession(t.b, CKF_SERIAL_RW);
  t.faults.slot(t.a).set({ fail: CKR.DEVICE_REMOVED });
  assert.equal(ckrOf(() => t.pkcs11.C_GetTokenInfo(t.a)), "CKR_DEVICE_REMOVED");
  assert.equal(ckrOf(() => t.pkcs11.C_OpenSession(t.a, CKF_SERIAL_RW)), "CKR_DEVICE_REMOVED");
  assert.equal(ckrOf(() => t.pkcs11.C_Login(onA, CKU_USER, t.env.pin)), "CKR_DEVICE_REMOVED");
  assert.equal(ckrOf(() => t.pkcs11.C_GenerateRandom(onA, Buffer.alloc(8))), "CKR_DEVICE_REMOVED");
  assert.equal(ckrOf(() => t.pkcs11.C_GetTokenInfo(t.b)), "CKR_OK");
  assert.equal(ckrOf(() => t.pkcs11.C_Login(onB, CKU_USER, t.env.pin)), "CKR_OK");
  assert.equal(ckrOf(() => t.pkcs11.C_GenerateRandom(onB, Buffer.alloc(8))), "CKR_OK");
  t.faults.reset();
  assert.equal(ckrOf(() => t.pkcs11.C_GenerateRandom(onA, Buffer.alloc(8))), "CKR_OK");
  t.pkcs11.C_CloseAllSessions(t.a);
  t.pkcs11.C_CloseAllSessions(t.b);
});

Deno.test("a slot locks its user PIN after N wrong tries, until reset, and the other slot does not", async () => {
  await using t = await openTwoSlots();
  t.faults.slot(t.a).set({ lockPinAfter: 2 });
  assert.equal(login(t, t.a, "0000"), "CKR_PIN_INCORRECT");
  assert.equal(login(t, t.a, "0000"), "CKR_PIN_INCORRECT");
  assert.equal(login(t, t.a, "0000"), "CKR_PIN_LOCKED");
  assert.equal(login(t, t.a, t.env.pin), "CKR_PIN_LOCKED", "even the right PIN");
  assert.ok(t.pkcs11.C_GetTokenInfo(t.a).flags & CKF_USER_PIN_LOCKED, "the token info says so");
  for (let i = 0; i < 3; i++) assert.equal(login(t, t.b, "0000"), "CKR_PIN_INCORRECT");
  assert.equal(login(t, t.b, t.env.pin), "CKR_OK");
  assert.equal(t.pkcs11.C_GetTokenInfo(t.b).flags & CKF_USER_PIN_LOCKED, 0);
  t.faults.reset();
  assert.equal(login(t, t.a, t.env.pin), "CKR_OK");
});

Deno.test("a hanging slot holds its calls until cleared, and the other slot answers meanwhile", async () => {
  await using t = await openTwoSlots();
  const onA = t.pkcs11.C_OpenSession(t.a, CKF_SERIAL_RW);
  const onB = t.pkcs11.C_OpenSession(t.b, CKF_SERIAL_RW);
  const data = Buffer.from("held on the wire");
  t.pkcs11.C_DigestInit(onA, { mechanism: CKM_SHA256 });
  t.faults.slot(t.a).set({ hang: true });
  let settled = false;
  const digest = t.pkcs11.C_DigestAsync(onA, data, Buffer.alloc(32)).finally(() => {
    settled = true;
  });
  assert.equal(ckrOf(() => t.pkcs11.C_GenerateRandom(onB, Buffer.alloc(8))), "CKR_OK");
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(settled, false, "the call on the hanging slot is still held");
  t.faults.reset();
  const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  assert.deepEqual(new Uint8Array(await digest), expected, "and completes once cleared");
  t.pkcs11.C_CloseAllSessions(t.a);
  t.pkcs11.C_CloseAllSessions(t.b);
});

Deno.test("latency makes each crypto call wait without using a CPU", async () => {
  await using t = await openTwoSlots();
  const session = t.pkcs11.C_OpenSession(t.a, CKF_SERIAL_RW);
  t.faults.slot(t.a).set({ delayUs: 100_000 });
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  t.pkcs11.C_DigestInit(session, { mechanism: CKM_SHA256 });
  t.pkcs11.C_Digest(session, Buffer.from("far away"), Buffer.alloc(32));
  const elapsedMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  assert.ok(elapsedMs >= 200, `two crypto calls waited 100 ms each (took ${elapsedMs} ms)`);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  assert.ok(cpuMs < 100, `the wait used no CPU (${cpuMs} ms of CPU)`);
  t.pkcs11.C_CloseSession(session);
});
