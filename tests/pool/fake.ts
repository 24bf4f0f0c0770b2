/**
 * A fake resource for the pool's own tests: the pool knows nothing of what it
 * pools, so a counter with switchable failures and latency is enough to pin
 * down its behaviour. (Adapters are tested against the real HSM and server.)
 */
export interface FakeResource {
  id: number;
  alive: boolean;
  broken: boolean;
}

/** A controllable factory that remembers everything it made. */
export class FakeFactory {
  made: FakeResource[] = [];
  destroyed: FakeResource[] = [];
  createCalls = 0;
  /** When set, `create` rejects with this error. */
  failWith: Error | undefined;
  /** Milliseconds each `create` takes. */
  createDelayMs = 0;
  /** Creates held until released by hand (see {@link FakeFactory.holdCreates}). */
  #held: (() => void)[] = [];
  #holding = false;

  create = async (_signal: AbortSignal): Promise<FakeResource> => {
    this.createCalls++;
    if (this.#holding) await new Promise<void>((resolve) => this.#held.push(resolve));
    if (this.createDelayMs > 0) await delay(this.createDelayMs);
    if (this.failWith) throw this.failWith;
    const resource = { id: this.made.length + 1, alive: true, broken: false };
    this.made.push(resource);
    return resource;
  };

  destroy = (resource: FakeResource): void => {
    resource.alive = false;
    this.destroyed.push(resource);
  };

  /** The pool options it supplies: `new Pool({ ...factory.hooks, max: 2 })`. */
  get hooks(): { create: FakeFactory["create"]; destroy: FakeFactory["destroy"] } {
    return { create: this.create, destroy: this.destroy };
  }

  /** From now on creates wait until {@link FakeFactory.releaseCreates}. */
  holdCreates(): void {
    this.#holding = true;
  }

  /** Lets every held create go on, and stops holding. */
  releaseCreates(): void {
    this.#holding = false;
    for (const resume of this.#held.splice(0)) resume();
  }

  /** Creates currently held. */
  get heldCreates(): number {
    return this.#held.length;
  }

  get alive(): number {
    return this.made.filter((r) => r.alive).length;
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every few ms until it holds or `timeoutMs` passes (then throws). */
export async function until(condition: () => boolean, what: string, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await delay(2);
  }
}

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
  await delay(0);
}
