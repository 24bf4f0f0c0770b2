/**
 * The adapter's own view of the wire: it opens each connection's socket itself (postgres.js's
 * `socket` option) so that it can read what postgres.js does not expose, the transaction status
 * the server sends with every ReadyForQuery (`I` idle, `T` in a transaction, `E` in a failed
 * one). Reading it costs no round trip: the server sends it anyway.
 *
 * Only plaintext connections are watched: over TLS the bytes on the socket are encrypted (the
 * status is then `unknown`, and the connection is rolled back whenever it ran anything).
 * It also keeps cancel-request sockets from waiting forever for a server that does not answer.
 *
 * @module
 */
import net from "node:net";

/**
 * The server's transaction status as last seen in a ReadyForQuery message: `idle` (`I`), `open`
 * (`T`: in a transaction block), `failed` (`E`: in a failed one, only ROLLBACK works), or
 * `unknown` (over TLS, where the adapter cannot read it).
 */
export type TxStatus = "idle" | "open" | "failed" | "unknown";

const READY_FOR_QUERY = 0x5a; // 'Z'
const STATUS: Record<number, TxStatus> = { 0x49: "idle", 0x54: "open", 0x45: "failed" };

/**
 * Follows the backend message framing (type byte, 4-byte length, body) across chunks and
 * records the status byte of each ReadyForQuery. Bodies are skipped, not copied.
 */
export class ReadyForQueryWatcher {
  /** The status of the last ReadyForQuery seen. */
  status: TxStatus = "unknown";
  /** Whether any ReadyForQuery was seen, on this stream or one before it. */
  everReady = false;
  /** ReadyForQuery messages since {@link ReadyForQueryWatcher.forget}: statements that ran. */
  readies = 0;
  readonly #header = new Uint8Array(5);
  #headerBytes = 0;
  #bodyLeft = 0;
  #statusNext = false;

  /** Feeds bytes received from the server, in order. */
  readonly feed = (chunk: Uint8Array): void => {
    let i = 0;
    while (i < chunk.length) {
      if (this.#bodyLeft > 0) {
        if (this.#statusNext) {
          this.status = STATUS[chunk[i]] ?? "unknown";
          this.#statusNext = false;
        }
        const n = Math.min(this.#bodyLeft, chunk.length - i);
        i += n;
        this.#bodyLeft -= n;
        continue;
      }
      this.#header[this.#headerBytes++] = chunk[i++];
      if (this.#headerBytes < 5) continue;
      this.#headerBytes = 0;
      const h = this.#header;
      const length = ((h[1] << 24) | (h[2] << 16) | (h[3] << 8) | h[4]) >>> 0;
      this.#bodyLeft = length - 4;
      this.#statusNext = h[0] === READY_FOR_QUERY && this.#bodyLeft === 1;
      if (this.#statusNext) {
        this.readies++;
        this.everReady = true;
      }
    }
  };

  /** Follows a new stream from its start (a new socket): nothing seen yet. */
  restart(): void {
    this.status = "unknown";
    this.readies = 0;
    this.#headerBytes = 0;
    this.#bodyLeft = 0;
    this.#statusNext = false;
  }

  /**
   * Starts counting anew (the status stays). `ownReadies`: ReadyForQuery messages still to come
   * for the adapter's own statements already sent (a pipelined reset), not counted as ran.
   */
  forget(ownReadies = 0): void {
    this.readies = -ownReadies;
  }
}

/** What postgres.js passes to the `socket` option: its parsed options. */
interface ParsedOptions {
  host: string[];
  port: number[];
  path?: string;
  ssl?: unknown;
  connect_timeout?: number;
}

/** Opens a socket for postgres.js; the user's own `socket` option when given. */
export type SocketFactory = (options: ParsedOptions) => Promise<net.Socket> | net.Socket;

/** How long a cancel request may wait for the server to close its socket. */
export const CANCEL_TIMEOUT_MS = 5_000;

/**
 * The sockets of one pooled connection: the first one opened is the session's (watched when
 * plaintext); a later one opened for a cancel request is destroyed if the server does not
 * close it within {@link CANCEL_TIMEOUT_MS}, as it never will behind a dead network.
 */
export class ConnectionSockets {
  /** The transaction status, when the session socket is plaintext. */
  readonly watcher = new ReadyForQueryWatcher();
  /** The session's socket, once open. */
  session: net.Socket | undefined;
  /** Set before cancel requests go out: later sockets are theirs, and bounded in time. */
  cancelling = false;
  readonly #open: SocketFactory;

  constructor(userFactory: SocketFactory | undefined) {
    this.#open = userFactory ?? connectTcp;
  }

  /** The `socket` option to give postgres.js. */
  readonly factory = async (options: ParsedOptions): Promise<net.Socket> => {
    if (this.session !== undefined && !this.cancelling) {
      // postgres.js opens a new session socket, without end, when one closes during startup.
      // Until the server's first ReadyForQuery nothing of postgres.js's own waits on it: the
      // socket is refused, so the open fails and the pool decides what to retry. Once one was
      // seen (postgres.js fetching its array types; or over TLS, where the adapter cannot
      // tell), refusing would reject that internal query, which nothing awaits: the new socket
      // is given and watched from its start.
      if (!options.ssl && !this.watcher.everReady) {
        throw Object.assign(
          new Error("the server closed the connection before it was ready (during startup)"),
          { code: "CONNECTION_CLOSED" },
        );
      }
      this.session = undefined;
      this.watcher.restart();
    }
    const socket = await this.#open(options);
    if (this.session === undefined) {
      this.session = socket;
      if (!options.ssl) socket.on("data", this.watcher.feed);
    } else if (this.cancelling) {
      boundCancelSocket(socket);
    }
    return socket;
  };

  /** Destroys the session socket at once (no goodbye: the network may be gone). */
  destroy(): void {
    this.session?.destroy();
  }
}

function boundCancelSocket(socket: net.Socket): void {
  const timer = setTimeout(() => socket.destroy(), CANCEL_TIMEOUT_MS);
  socket.once("close", () => clearTimeout(timer));
}

/** Connects to the first host that answers, within postgres.js's `connect_timeout`. */
async function connectTcp(options: ParsedOptions): Promise<net.Socket> {
  const timeoutMs = (options.connect_timeout ?? 30) * 1_000;
  if (options.path) return await connectOne({ path: options.path }, timeoutMs);
  let lastError: unknown;
  for (let i = 0; i < options.host.length; i++) {
    const port = options.port[i] ?? options.port[0];
    try {
      return await connectOne({ host: options.host[i], port }, timeoutMs);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

function connectOne(
  to: { host: string; port: number } | { path: string },
  timeoutMs: number,
): Promise<net.Socket> {
  const { promise, resolve, reject } = Promise.withResolvers<net.Socket>();
  const socket = net.connect(to as net.NetConnectOpts);
  const fail = (error: Error) => {
    clearTimeout(timer);
    socket.destroy();
    reject(error);
  };
  const timer = setTimeout(() => {
    const where = "path" in to ? to.path : `${to.host}:${to.port}`;
    fail(Object.assign(new Error(`connect to ${where} timed out`), { code: "CONNECT_TIMEOUT" }));
  }, timeoutMs);
  socket.once("error", fail);
  socket.once("connect", () => {
    clearTimeout(timer);
    socket.removeListener("error", fail);
    resolve(socket);
  });
  return promise;
}
