/** Whether a file or folder exists at `path` (a setup check: it never throws). */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
