/**
 * Which label each AES key carries, as the token last said, so that `/decrypt` can check a
 * `key_id` against `key_label` without a `C_FindObjects` on every request (the lookup costs
 * about four times the decryption on SoftHSM). An entry is trusted for `ttlMs`, as the HSM
 * handle trusts its own key lookups; only ids the token named are kept, so the map is bounded by
 * the token's keys.
 *
 * @module
 */

/** Key id → label, each entry expiring `ttlMs` after the token said so. */
export class KeyLabels {
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #labels = new Map<string, { label: string; until: number }>();

  /** `now` is a monotonic clock in ms (`performance.now` unless a test drives it). */
  constructor(ttlMs = 1_000, now: () => number = () => performance.now()) {
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  /** Records that the token has key `keyId` under `label`. */
  remember(keyId: string, label: string): void {
    this.#labels.set(keyId, { label, until: this.#now() + this.#ttlMs });
  }

  /** The label of `keyId` if the token said it within `ttlMs`, else `undefined`. */
  labelOf(keyId: string): string | undefined {
    const entry = this.#labels.get(keyId);
    if (entry === undefined) return undefined;
    if (entry.until > this.#now()) return entry.label;
    this.#labels.delete(keyId);
    return undefined;
  }
}
