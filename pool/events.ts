/**
 * Fan-out of pool events to any number of async-iterator subscribers. Each
 * subscriber has a bounded buffer: a reader that falls behind loses the
 * oldest events, never the pool's memory. Emitting with no subscriber costs
 * one size check, so the pool guards hot-path emits with {@link EventHub.active}.
 *
 * A stream unsubscribes on every way out: `return()` (a `break` in
 * `for await`, also before the first `next()`), `throw()`, its signal, the
 * pool closing, and, as a backstop, being garbage collected unread.
 */
export class EventHub<E> {
  #subscribers = new Set<Subscriber<E>>();
  #closed = false;
  // The hub holds the buffers, never the streams, so a dropped stream can be collected.
  #dropped = new FinalizationRegistry<Subscriber<E>>((subscriber) => subscriber.end());

  /** Whether anyone is listening (check before building an event object). */
  get active(): boolean {
    return this.#subscribers.size > 0;
  }

  /** Subscribers now (for tests and stats). */
  get size(): number {
    return this.#subscribers.size;
  }

  /** Delivers an event to every subscriber. */
  emit(event: E): void {
    for (const subscriber of this.#subscribers) subscriber.push(event);
  }

  /** Ends every stream, after its buffered events are read. */
  close(): void {
    this.#closed = true;
    for (const subscriber of [...this.#subscribers]) subscriber.end();
  }

  /** A new stream of the events emitted from now on. */
  subscribe(bufferSize: number, signal?: AbortSignal): AsyncIterableIterator<E> {
    const subscriber = new Subscriber<E>(bufferSize, () => this.#subscribers.delete(subscriber));
    const stream = new EventStream(subscriber);
    if (this.#closed || signal?.aborted) {
      subscriber.end();
      return stream;
    }
    this.#subscribers.add(subscriber);
    if (signal !== undefined) subscriber.listen(signal);
    this.#dropped.register(stream, subscriber, subscriber);
    subscriber.unregister = () => this.#dropped.unregister(subscriber);
    return stream;
  }
}

/** One subscriber's buffer and wake-up; ends exactly once. */
class Subscriber<E> {
  readonly buffer: E[] = [];
  ended = false;
  wake: (() => void) | undefined = undefined;
  unregister: () => void = () => {};
  #signal: AbortSignal | undefined = undefined;

  constructor(readonly bufferSize: number, readonly unsubscribe: () => void) {}

  push(event: E): void {
    if (this.buffer.length >= this.bufferSize) this.buffer.shift();
    this.buffer.push(event);
    this.wake?.();
  }

  listen(signal: AbortSignal): void {
    this.#signal = signal;
    signal.addEventListener("abort", this, { once: true });
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.end();
  }

  /** Stops receiving; what is buffered can still be read. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.unsubscribe();
    this.unregister();
    this.#signal?.removeEventListener("abort", this);
    this.wake?.();
  }
}

/** The iterator a caller gets: reads the buffer, waits when it is empty. */
class EventStream<E> implements AsyncIterableIterator<E> {
  #subscriber: Subscriber<E>;

  constructor(subscriber: Subscriber<E>) {
    this.#subscriber = subscriber;
  }

  async next(): Promise<IteratorResult<E, undefined>> {
    const s = this.#subscriber;
    while (true) {
      if (s.buffer.length > 0) return { done: false, value: s.buffer.shift() as E };
      if (s.ended) return { done: true, value: undefined };
      const { promise, resolve } = Promise.withResolvers<void>();
      s.wake = resolve;
      await promise;
      s.wake = undefined;
    }
  }

  return(): Promise<IteratorResult<E, undefined>> {
    this.#subscriber.end();
    this.#subscriber.buffer.length = 0;
    return Promise.resolve({ done: true, value: undefined });
  }

  throw(error?: unknown): Promise<IteratorResult<E, undefined>> {
    this.return();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<E> {
    return this;
  }
}
