/**
 * Fan-out of pool events to any number of async-iterator subscribers. Each
 * subscriber has a bounded buffer: a reader that falls behind loses the
 * oldest events, never the pool's memory. Emitting with no subscriber costs
 * one size check, so the pool guards hot-path emits with {@link EventHub.active}.
 */
export class EventHub<E> {
  #subscribers = new Set<Subscriber<E>>();
  #closed = false;

  /** Whether anyone is listening (check before building an event object). */
  get active(): boolean {
    return this.#subscribers.size > 0;
  }

  /** Delivers an event to every subscriber. */
  emit(event: E): void {
    for (const subscriber of this.#subscribers) subscriber.push(event);
  }

  /** Ends every stream, after its buffered events are read. */
  close(): void {
    this.#closed = true;
    for (const subscriber of this.#subscribers) subscriber.end();
    this.#subscribers.clear();
  }

  /** A new stream of the events emitted from now on. */
  subscribe(bufferSize: number, signal?: AbortSignal): AsyncIterableIterator<E> {
    const subscriber = new Subscriber<E>(bufferSize);
    if (this.#closed || signal?.aborted) {
      subscriber.end();
      return subscriber.stream();
    }
    this.#subscribers.add(subscriber);
    const onAbort = () => {
      this.#subscribers.delete(subscriber);
      subscriber.end();
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    subscriber.onEnd = () => {
      this.#subscribers.delete(subscriber);
      signal?.removeEventListener("abort", onAbort);
    };
    return subscriber.stream();
  }
}

class Subscriber<E> {
  #buffer: E[] = [];
  #ended = false;
  #wake: (() => void) | undefined;
  onEnd: () => void = () => {};

  constructor(readonly bufferSize: number) {}

  push(event: E): void {
    if (this.#buffer.length >= this.bufferSize) this.#buffer.shift();
    this.#buffer.push(event);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *stream(): AsyncIterableIterator<E> {
    try {
      while (true) {
        if (this.#buffer.length > 0) {
          yield this.#buffer.shift() as E;
          continue;
        }
        if (this.#ended) return;
        const { promise, resolve } = Promise.withResolvers<void>();
        this.#wake = resolve;
        await promise;
        this.#wake = undefined;
      }
    } finally {
      this.#ended = true;
      this.onEnd();
    }
  }
}
