/**
 * The service as a child process, the way operators run it: spawns
 * `deno task serve` (or `tasks/serve.ts` directly), waits for its
 * "listening" log line, and keeps every line it writes.
 */

const ROOT = new URL("../../", import.meta.url).pathname;

/** A running child service. */
export interface ChildService {
  /** Base URL from the "listening" line. */
  url: string;
  /** Every stderr line so far (JSON log lines and the task's own notes). */
  lines: string[];
  /** Sends a signal. */
  kill(signal: Deno.Signal): void;
  /** Waits for exit; resolves with the status, stdout and all stderr lines. */
  exited(): Promise<{ code: number; stdout: string; stderr: string }>;
}

/** Reads a stream line by line into `lines`; resolves `listening` with the URL. */
function collect(stream: ReadableStream<Uint8Array>, lines: string[]) {
  const listening = Promise.withResolvers<string>();
  const done = (async () => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (line.includes('"listening"')) listening.resolve(JSON.parse(line).url);
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
  }).spawn();
  const stdout = new Response(child.stdout).text();
  const lines: string[] = [];
  const stderr = collect(child.stderr, lines);
  const exited = async () => {
    const status = await child.status;
    await stderr.done;
    return { code: status.code, stdout: await stdout, stderr: lines.join("\n") };
  };
  let url: string;
  try {
    url = await stderr.listening;
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
    await exited();
    throw error;
  }
  return { url, lines, kill: (signal) => child.kill(signal), exited };
}
