/**
 * Describes the machine a run happened on, so figures are never read
 * without their context.
 *
 * @module
 */

/** Where and when a run happened. */
export interface MachineInfo {
  /** ISO date and time the run started. */
  date: string;
  /** Logical CPUs. */
  cores: number;
  /** CPU model name, when the OS tells. */
  cpu: string;
  /** Total memory in GiB. */
  memoryGiB: number;
  /** OS name and kernel. */
  os: string;
  /** Deno version. */
  deno: string;
  /** V8 version. */
  v8: string;
  /** TypeScript version. */
  typescript: string;
  /** 1/5/15-minute load averages when the run started. */
  loadavg: number[];
}

/** Collects machine facts (Linux files are read when present, never required). */
export function machineInfo(): MachineInfo {
  const cpu = readText("/proc/cpuinfo")?.match(/^model name\s*:\s*(.+)$/m)?.[1] ?? "unknown";
  const distro = readText("/etc/os-release")?.match(/^PRETTY_NAME="?([^"\n]+)"?$/m)?.[1];
  return {
    date: new Date().toISOString(),
    cores: navigator.hardwareConcurrency,
    cpu,
    memoryGiB: Math.round((Deno.systemMemoryInfo().total / 2 ** 30) * 10) / 10,
    os: `${distro ?? Deno.build.os} (kernel ${Deno.osRelease()}, ${Deno.build.arch})`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    loadavg: Deno.loadavg(),
  };
}

/** One line for humans: "2 cores (…), 23.5 GiB, Debian…, Deno 2.9.6 (V8 …)". */
export function describeMachine(m: MachineInfo): string {
  return `${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, ${m.os}, Deno ${m.deno} (V8 ${m.v8}), ` +
    `${m.date.slice(0, 16).replace("T", " ")} UTC`;
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}
