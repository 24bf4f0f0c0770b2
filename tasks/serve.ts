/**
 * `deno task serve`: the secret-manager HTTP service on the HSM pool.
 *
 * Out of the box it builds pkcs11js's native addon if needed, provisions the
 * private SoftHSM2 token in `.local/softhsm` (unless `SOFTHSM2_CONF` or a
 * module path points elsewhere), and serves on http://127.0.0.1:8080.
 * `--help` lists the flags; SIGINT/SIGTERM shut it down gracefully.
 *
 * @module
 */

import { ensurePkcs11js } from "./setup/pkcs11js.ts";
import { provisionSoftHsm } from "./setup/softhsm.ts";
import { taskArgs } from "./task_args.ts";
import { CONFIG_FLAGS, ConfigError, loadConfig, usage } from "../service/config.ts";

// Before the build and the token: --help and a misspelled flag answer at once.
taskArgs(usage(), CONFIG_FLAGS);

await ensurePkcs11js();

// The private test token, unless the caller configured another HSM.
const ownHsm = Deno.env.get("SOFTHSM2_CONF") !== undefined ||
  Deno.env.get("PKCS11_MODULE") !== undefined || Deno.args.some((a) => a.startsWith("--module"));
if (!ownHsm) {
  const softhsm = await provisionSoftHsm(); // sets SOFTHSM2_CONF for this process
  if (Deno.env.get("PKCS11_PIN") === undefined) {
    Deno.env.set("PKCS11_PIN", softhsm.pin);
    console.error(
      `serve: using the private test token "${softhsm.tokenLabel}" (${softhsm.tokenDir}) with ` +
        `its test-only default PIN; set PKCS11_PIN for anything else`,
    );
  }
}

// Loaded after the addon build: the adapter imports pkcs11js at load time.
const { startService } = await import("../service/server.ts");
const { shutdownOnSignals } = await import("../service/signals.ts");
const { errorText, jsonLogger } = await import("../service/log.ts");
const { pinRefusal, pinRefusalAdvice } = await import("../service/pin_refusal.ts");

const log = jsonLogger();
let config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`serve: ${error.message}`);
  Deno.exit(2);
}

// Listening for signals before the service starts: a SIGTERM that arrives
// while it starts (or just as it logs "listening") drains it once it is up,
// instead of killing the process.
const starting = startService({ config, log });
// The listeners stay until the process exits: a copy of the signal that arrives after the
// service stopped (the runner forwards it late on a busy machine) must not kill it with 143.
shutdownOnSignals(
  (reason) => starting.then((service) => service.shutdown(reason)),
  log,
);
try {
  await (await starting).finished;
} catch (error) {
  const pin = pinRefusal(error);
  log("error", "the service failed to start", {
    error: errorText(error),
    ...(pin ? { action: pinRefusalAdvice(pin) } : {}),
  });
  // 78 (EX_CONFIG) for a refused PIN, so a supervisor can be told not to
  // restart into another failed login (systemd: RestartPreventExitStatus=78).
  Deno.exit(pin ? 78 : 1);
}
// Stopped: a connection Deno.serve still holds (a client that never hung
// up) must not keep the process alive.
Deno.exit();
