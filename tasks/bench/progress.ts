/**
 * A progress line on stderr: which benchmark, which round, how long is left.
 * On a terminal it redraws one line in place; otherwise (CI logs, tests) it
 * prints a plain line at most every few seconds. Stdout is never touched,
 * so `deno task bench > results.md` gets clean markdown.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Where the run is, for the progress line. */
export interface ProgressState {
  /** Benchmark title. */
  benchmark: string;
  /** Scenario label. */
  scenario: string;
  /** Contender running now. */
  contender: string;
  /** Current round (0 = warm-up). */
  round: number;
  /** Rounds in total. */
  rounds: number;
  /** Estimated milliseconds left in the whole run. */
  leftMs: number;
}

/** Writes progress to stderr without disturbing stdout. */
export class Progress {
  readonly #tty = Deno.stderr.isTerminal();
  #lastPlainAt = 0;
  #drawn = false;

  /** Shows the current state. */
  update(s: ProgressState): void {
    const round = s.round === 0 ? "warm-up" : `round ${s.round}/${s.rounds}`;
    const line = `[${s.benchmark}] ${s.scenario} · ${round} · ${s.contender} · ~${
      formatDuration(s.leftMs)
    } left`;
    if (this.#tty) {
      Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${line}`));
      this.#drawn = true;
    } else if (performance.now() - this.#lastPlainAt > 5_000) {
      this.#lastPlainAt = performance.now();
      Deno.stderr.writeSync(encoder.encode(line + "\n"));
    }
  }

  /** Prints a full line (a heading, a note), clearing the progress line first. */
  log(message: string): void {
    this.clear();
    Deno.stderr.writeSync(encoder.encode(message + "\n"));
  }

  /** Erases the progress line. */
  clear(): void {
    if (this.#tty && this.#drawn) Deno.stderr.writeSync(encoder.encode("\r\x1b[2K"));
    this.#drawn = false;
  }
}

/** "1m 05s", "12s". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}
