/**
 * {@link KeyCache}: token keys by label and by id, kept for a short time.
 *
 * `C_FindObjects` is slow on SoftHSM (60-180 µs, more than an AES-GCM of
 * 1 KiB), and a service looks a key up on every request. Token objects'
 * handles are valid in every session of the process, so they may be cached;
 * session objects are never cached (they die with their session). Entries
 * expire after `ttlMs`, so a key added under a label (rotation) is picked up
 * within that time, and every entry is dropped when the token is logged in
 * again (its login generation changes: SoftHSM renumbers private objects).
 *
 * @module
 */
import { HsmError, KeyNotFoundError } from "./errors.ts";
import { checkKeyId, type HsmKey, type HsmKeyKind } from "./ops.ts";
import type { HsmSession } from "./session.ts";
import type { Deadline } from "./threads.ts";

/** Runs a lookup on a pooled session (the handle's `use`, with its re-login). */
export type KeyLookup = <T>(
  fn: (session: HsmSession) => T,
  deadline?: Deadline,
) => Promise<T>;

interface Entry<T> {
  value: T;
  at: number;
  generation: number;
}

/** Cached token keys with a time to live. */
export class KeyCache {
  readonly #byLabel = new Map<string, Entry<HsmKey[]>>();
  readonly #byId = new Map<string, Entry<HsmKey>>();

  /** Looks keys up through `lookup`, keeping them `ttlMs` (0: never) within one login `generation`. */
  constructor(
    private readonly lookup: KeyLookup,
    private readonly ttlMs: number,
    private readonly generation: () => number,
  ) {}

  #fresh<T>(entry: Entry<T> | undefined): T | undefined {
    if (entry === undefined || entry.generation !== this.generation()) return undefined;
    return performance.now() - entry.at < this.ttlMs ? entry.value : undefined;
  }

  #keep<T>(map: Map<string, Entry<T>>, key: string, value: T): void {
    if (this.ttlMs > 0) {
      map.set(key, { value, at: performance.now(), generation: this.generation() });
    }
  }

  /** The cached AES token keys with this label, or `undefined` (not cached, or expired). */
  cachedForLabel(label: string): HsmKey[] | undefined {
    return this.#fresh(this.#byLabel.get(label));
  }

  /**
   * The AES token keys with this label (at least one, each with a
   * `CKA_ID`). Throws {@link KeyNotFoundError} when there is none, and an
   * {@link HsmError} when one has no `CKA_ID`: what it encrypts could not
   * be decrypted by id later.
   */
  async forLabel(label: string, deadline?: Deadline): Promise<HsmKey[]> {
    const cached = this.cachedForLabel(label);
    if (cached !== undefined) return cached;
    const keys = await this.lookup((s) => {
      const found = s.findKeys(label, "aes", true);
      if (found.length === 0) throw new KeyNotFoundError(`label "${label}"`);
      return found;
    }, deadline);
    const withoutId = keys.filter((k) => k.id === "").length;
    if (withoutId > 0) throw keyWithoutId(label, withoutId);
    this.#keep(this.#byLabel, label, keys);
    for (const key of keys) this.#keep(this.#byId, `${key.kind}:${key.id}`, key);
    return keys;
  }

  /** The token key of this kind with this id (hex); throws {@link KeyNotFoundError} when none. */
  async byId(id: string, kind: HsmKeyKind, deadline?: Deadline): Promise<HsmKey> {
    checkKeyId(id);
    const cacheKey = `${kind}:${id.toLowerCase()}`;
    const cached = this.#fresh(this.#byId.get(cacheKey));
    if (cached !== undefined) return cached;
    const key = await this.lookup((s) => {
      const found = s.findKeyById(id, kind, true);
      if (found === undefined) throw new KeyNotFoundError(`id ${id}`);
      return found;
    }, deadline);
    this.#keep(this.#byId, cacheKey, key);
    return key;
  }

  /**
   * Forgets this key (destroyed through the handle, or its handle turned
   * out invalid): the other keys of its label stay cached.
   */
  forget(key: HsmKey): void {
    const entry = this.#byLabel.get(key.label);
    if (entry !== undefined) {
      entry.value = entry.value.filter((k) => !k.handle.equals(key.handle));
      if (entry.value.length === 0) this.#byLabel.delete(key.label);
    }
    const byId = this.#byId.get(`${key.kind}:${key.id}`);
    if (byId?.value.handle.equals(key.handle)) this.#byId.delete(`${key.kind}:${key.id}`);
  }
}

function keyWithoutId(label: string, count: number): HsmError {
  return new HsmError(
    `${count} AES key(s) labelled "${label}" have no CKA_ID, so what they encrypt could not ` +
      `be decrypted by key id later: give each one an id (pkcs11-tool --login --type secrkey ` +
      `--label "${label}" --set-id <hex>), or make keys with one (pkcs11-tool --keygen --id ` +
      `<hex>; generateAesKey() gives one by default)`,
    { operation: "encrypt" },
  );
}
