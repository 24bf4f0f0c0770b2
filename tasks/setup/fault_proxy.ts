/**
 * A TCP proxy on 127.0.0.1 that sits between a client and a server and misbehaves on demand,
 * to test what a pool does when the network does:
 *
 * - `pass`: bytes flow both ways.
 * - `blackhole`: sockets stay open and nothing is forwarded, as when a firewall drops packets or
 *   a host is gone (no RST). Bytes sent meanwhile wait, as TCP would retransmit them, and flow
 *   again when the mode goes back to `pass`. New connections are accepted and wait too.
 * - `reset`: every open connection is closed at once, and new ones are closed on arrival.
 *
 * ```ts
 * await using proxy = await startFaultProxy({ port: db.port });
 * const url = db.url.replace(`:${db.port}/`, `:${proxy.port}/`);
 * proxy.setMode("blackhole");
 * ```
 *
 * @module
 */

/** What the proxy does with traffic. */
export type FaultMode = "pass" | "blackhole" | "reset";

/** Where the proxy forwards to. */
export interface FaultProxyOptions {
  /** The server's port on 127.0.0.1. */
  port: number;
  /** Starting mode. Default `"pass"`. */
  mode?: FaultMode;
}

/** A running proxy. Dispose of it to close the listener and every connection. */
export interface FaultProxy extends AsyncDisposable {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** The current mode. */
  readonly mode: FaultMode;
  /** Client connections open now. */
  readonly connections: number;
  /** Client connections accepted since the start (what the server was asked for, at the wire). */
  readonly accepted: number;
  /** Switches the mode; `reset` closes every open connection at once. */
  setMode(mode: FaultMode): void;
  /** Closes the listener and every connection, and waits until all are closed. */
  close(): Promise<void>;
}

const HOST = "127.0.0.1";

/** Starts a fault proxy forwarding 127.0.0.1:`port`. */
export function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  if (!Number.isInteger(options.port) || options.port <= 0 || options.port > 65_535) {
    throw new RangeError(`startFaultProxy: port must be a TCP port number, got ${options.port}`);
  }
  return Promise.resolve(new Proxy(options.port, options.mode ?? "pass"));
}

/** One client connection and its upstream: closed together. */
class Pair {
  upstream: Deno.TcpConn | undefined;
  #closed = false;
  constructor(readonly client: Deno.TcpConn) {}

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const conn of [this.client, this.upstream]) {
      try {
        conn?.close();
      } catch { /* already closed */ }
    }
  }
}

class Proxy implements FaultProxy {
  readonly port: number;
  #mode: FaultMode;
  readonly #target: number;
  readonly #listener: Deno.TcpListener;
  readonly #pairs = new Set<Pair>();
  readonly #tasks = new Set<Promise<void>>();
  /** Resolved while the mode is `pass`; replaced by a pending one while it is not. */
  #open = Promise.withResolvers<void>();
  #closing: Promise<void> | undefined;
  #accepted = 0;

  constructor(target: number, mode: FaultMode) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: HOST, port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#mode = "pass";
    this.#open.resolve();
    this.setMode(mode);
    this.#spawn(this.#accept());
  }

  get mode(): FaultMode {
    return this.#mode;
  }

  get connections(): number {
    return this.#pairs.size;
  }

  get accepted(): number {
    return this.#accepted;
  }

  setMode(mode: FaultMode): void {
    if (mode !== "pass" && mode !== "blackhole" && mode !== "reset") {
      throw new RangeError(`FaultProxy.setMode: unknown mode '${mode}' (pass, blackhole, reset)`);
    }
    const wasPassing = this.#mode === "pass";
    this.#mode = mode;
    if (mode === "pass") this.#open.resolve();
    else if (wasPassing) this.#open = Promise.withResolvers<void>();
    if (mode === "reset") { for (const pair of this.#pairs) pair.close(); }
  }

  close(): Promise<void> {
    return this.#closing ??= (async () => {
      this.#listener.close();
      for (const pair of this.#pairs) pair.close();
      this.#open.resolve(); // wake every waiting pump so it sees its sockets closed
      while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    })();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #spawn(task: Promise<void>): void {
    const tracked = task.catch(() => {}).finally(() => this.#tasks.delete(tracked));
    this.#tasks.add(tracked);
  }

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      this.#accepted++;
      const pair = new Pair(client);
      if (this.#mode === "reset" || this.#closing) {
        pair.close();
        continue;
      }
      this.#pairs.add(pair);
      this.#spawn(
        this.#serve(pair).finally(() => {
          pair.close();
          this.#pairs.delete(pair);
        }),
      );
    }
  }

  async #serve(pair: Pair): Promise<void> {
    await this.#open.promise; // a blackhole holds new connections too
    if (this.#closing || this.#mode === "reset") return;
    pair.upstream = await Deno.connect({ hostname: HOST, port: this.#target });
    await Promise.all([
      this.#pump(pair.client, pair.upstream),
      this.#pump(pair.upstream, pair.client),
    ])
      .finally(() => pair.close());
  }

  /** Copies `from` to `to`, waiting while the mode is not `pass`. */
  async #pump(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        await this.#open.promise;
        const n = await from.read(buffer);
        if (this.#closing) return;
        if (n === null) return await to.closeWrite(); // pass the end on, as a real path does
        await this.#open.promise; // read during pass, the mode changed: hold it
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
      }
    } catch {
      // a socket closed under us (reset mode, dispose, or a peer): the pair is closed below
    }
  }
}
