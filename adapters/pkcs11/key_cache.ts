/**
 * {@link KeyCache}: token keys by label and by id, kept for a short time.
 *
 * `C_FindObjects` is slow on SoftHSM (60-180 µs, more than an AES-GCM of
 * 1 KiB), and the service looks a key up on every request. Token objects'
 * handles are valid in every session of the process, so they may be cached;
 * session objects are never cached (they die with their session). Entries
 * expire after `ttlMs`, so a key added under a label (rotation) is picked up
 * within that time; a handle that turns out invalid drops its entries.
 *
 * @module
 */
import type { HsmKey } from "./keys.ts";
import type { HsmSession } from "./session.ts";

/** Cached token keys with a time to live. */
export class KeyCache {
  readonly #ttlMs: number;
  readonly #use: <T>(fn: (session: HsmSession) => T) => Promise<T>;
  readonly #byLabel = new Map<string, { keys: HsmKey[]; at: number }>();
  readonly #byId = new Map<string, { key: HsmKey; at: number }>();

  /** Looks keys up through `use`, keeping them `ttlMs` (0: never cache). */
  constructor(use: <T>(fn: (session: HsmSession) => T) => Promise<T>, ttlMs: number) {
    this.#use = use;
    this.#ttlMs = ttlMs;
  }

  /** The AES token keys with this label (maybe none). */
  async byLabel(label: string): Promise<HsmKey[]> {
    const hit = this.#byLabel.get(label);
    if (hit && performance.now() - hit.at < this.#ttlMs) return hit.keys;
    const keys = await this.#use((s) => s.findKeys(label, "aes", true));
    if (this.#ttlMs > 0 && keys.length > 0) {
      const at = performance.now();
      this.#byLabel.set(label, { keys, at });
      for (const key of keys) this.#byId.set(key.id, { key, at });
    }
    return keys;
  }

  /** The AES token key with this id, or `undefined`. */
  async byId(id: string): Promise<HsmKey | undefined> {
    const hit = this.#byId.get(id);
    if (hit && performance.now() - hit.at < this.#ttlMs) return hit.key;
    const key = await this.#use((s) => s.findKeyById(id, "aes", true));
    if (key && this.#ttlMs > 0) this.#byId.set(id, { key, at: performance.now() });
    return key;
  }

  /** Drops everything cached about this key (its handle turned out invalid). */
  forget(key: HsmKey): void {
    this.#byLabel.delete(key.label);
    this.#byId.delete(key.id);
  }
}
