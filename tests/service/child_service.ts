/**
 * The service as a child process, the way operators run it: spawns
 * `deno task serve` (or `tasks/serve.ts` directly) in a process group of its
 * own, as a shell runs a job, waits for its "listening" log line, and keeps
 * every line it writes.
 */

import { provisionSoftHsm, type SoftHsm } from "../../tasks/setup/softhsm.ts";
import { KEY_LABEL, TEST_PIN } from "./fixture.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A running child service. */
export interface ChildService {
  /** Base URL from the "listening" line. */
  url: string;
  /** Every stderr line so far (JSON log lines and the task's own notes). */
  lines: string[];
  /** The spawned process: the `deno task` runner with `task`, else the service; it leads the group. */
  pid: number;
  /** The service's own process (from its "listening" line); with `task`, the runner's child. */
  servicePid: number;
  /** Sends a signal to the spawned process only. */
  kill(signal: Deno.Signal): void;
  /** Sends a signal to the whole process group, as a terminal's Ctrl-C or systemd's stop does. */
  killGroup(signal: Deno.Signal): void;
  /** Sends a signal to the service process only (not the runner). */
  killService(signal: Deno.Signal): void;
  /** Waits for exit; resolves with the status, stdout and all stderr lines. */
  exited(): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Reads a stream line by line into `lines`; resolves `listening` with the URL. */
function collect(stream: ReadableStream<Uint8Array>, lines: string[]) {
  const listening = Promise.withResolvers<{ url: string; pid: number }>();
  const done = (async () => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (line.includes('"listening"')) listening.resolve(JSON.parse(line));
      }
    }
    if (rest) lines.push(rest);
    listening.reject(new Error(`the service never listened:\n${lines.join("\n")}`));
  })();
  return { listening: listening.promise, done };
}

/**
 * Spawns the service with `args`. `env` replaces the variables it names;
 * `unset` removes inherited ones (so the task's defaults show).
 */
export async function spawnService(options: {
  task?: boolean;
  args: string[];
  env?: Record<string, string>;
  unset?: string[];
}): Promise<ChildService> {
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1", ...options.env };
  for (const name of options.unset ?? []) delete env[name];
  const args = options.task
    ? ["task", "serve", ...options.args]
    : ["run", "-A", "--unstable-no-legacy-abort", "tasks/serve.ts", ...options.args];
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true, // its own process group (and session), like a job started from a shell
  }).spawn();
  const stdout = new Response(child.stdout).text();
  const lines: string[] = [];
  const stderr = collect(child.stderr, lines);
  const exited = async () => {
    const status = await child.status;
    await stderr.done;
    return { code: status.code, stdout: await stdout, stderr: lines.join("\n") };
  };
  let listening: { url: string; pid: number };
  try {
    listening = await stderr.listening;
  } catch (error) {
    try {
      Deno.kill(-child.pid, "SIGKILL"); // the runner and the service
    } catch { /* already gone */ }
    await exited();
    throw error;
  }
  return {
    url: listening.url,
    lines,
    pid: child.pid,
    servicePid: listening.pid,
    kill: (signal) => child.kill(signal),
    killGroup: (signal) => Deno.kill(-child.pid, signal),
    killService: (signal) => Deno.kill(listening.pid, signal),
    exited,
  };
}

/** A child service on its own throwaway token; disposing kills what is left and deletes the token. */
export interface ServedChild extends ChildService, AsyncDisposable {
  /** The token it runs on. */
  softhsm: SoftHsm;
}

/**
 * `deno task serve` (in its own process group) on a fresh temp token with
 * the test PIN and the key label `app`, on a free port; `args` are more flags.
 */
export async function serveOnTempToken(
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<ServedChild> {
  const softhsm = await provisionSoftHsm({ temporary: true, pin: TEST_PIN, setEnv: false });
  let child: ChildService;
  try {
    child = await spawnService({
      task: true,
      args: ["--port", "0", "--ensure-key", KEY_LABEL, ...args],
      env: { ...softhsm.env, PKCS11_PIN: TEST_PIN, ...env },
      unset: ["DATABASE_URL", "PKCS11_MODULE", "PKCS11_TOKEN_LABEL", "PORT", "HOST"],
    });
  } catch (error) {
    await softhsm[Symbol.asyncDispose]();
    throw error;
  }
  let exit: ReturnType<ChildService["exited"]> | undefined;
  return {
    ...child,
    softhsm,
    exited: () => exit ??= child.exited(),
    async [Symbol.asyncDispose]() {
      try {
        Deno.kill(-child.pid, "SIGKILL"); // a test that failed half way leaves it running
      } catch { /* already gone */ }
      await (exit ??= child.exited());
      await softhsm[Symbol.asyncDispose]();
    },
  };
}
