/**
 * HTTP/1.1 over a raw TCP socket, for clients that misbehave in ways
 * `fetch` never does: bodies that stop half way, lying `Content-Length`,
 * half-closes, headers that never end.
 */

const encoder = new TextEncoder();

/** A response as it came off the wire. */
export interface RawResponse {
  /** Status code. */
  status: number;
  /** Header names in lower case. */
  headers: Map<string, string>;
  /** The body as text (what `Content-Length` announced, or up to EOF). */
  body: string;
}

/** One client connection to the service. */
export class RawClient implements Disposable {
  readonly #conn: Deno.TcpConn;
  #buffered: Uint8Array = new Uint8Array(0);
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** Connects to the service at `url` (`http://host:port`). */
  static async connect(url: string): Promise<RawClient> {
    const { hostname, port } = new URL(url);
    return new RawClient(await Deno.connect({ hostname, port: Number(port) }));
  }

  /** Writes text or bytes as they are. */
  async send(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
  }

  /** Half-closes: the service sees end of stream, and can still answer. */
  async closeWrite(): Promise<void> {
    await this.#conn.closeWrite();
  }

  /** Reads until the connection ends; resolves with everything read (maybe nothing). */
  async readToEnd(): Promise<string> {
    const chunks: Uint8Array[] = [this.#buffered];
    this.#buffered = new Uint8Array(0);
    for (let chunk; (chunk = await this.#read()) !== null;) chunks.push(chunk);
    return new TextDecoder().decode(concat(chunks));
  }

  /** Reads one response (head and `Content-Length` body; `head` for a HEAD request). */
  async readResponse(head = false): Promise<RawResponse> {
    let end: number;
    while ((end = indexOf(this.#buffered, "\r\n\r\n")) < 0) await this.#fill("response head");
    const lines = new TextDecoder().decode(this.#buffered.subarray(0, end)).split("\r\n");
    this.#buffered = this.#buffered.subarray(end + 4);
    const status = Number(lines[0].split(" ")[1]);
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const length = head ? 0 : Number(headers.get("content-length") ?? 0);
    while (this.#buffered.length < length) await this.#fill("response body");
    const body = new TextDecoder().decode(this.#buffered.subarray(0, length));
    this.#buffered = this.#buffered.subarray(length);
    return { status, headers, body };
  }

  async #read(): Promise<Uint8Array | null> {
    const buffer = new Uint8Array(16 * 1024);
    let n: number | null;
    try {
      n = await this.#conn.read(buffer);
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionReset) return null;
      throw error;
    }
    return n === null ? null : buffer.subarray(0, n);
  }

  async #fill(what: string): Promise<void> {
    const chunk = await this.#read();
    if (chunk === null) throw new Error(`the connection closed before the ${what} ended`);
    this.#buffered = concat([this.#buffered, chunk]);
  }

  /** Closes the socket (a client hanging up). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.close();
  }

  /** Same as {@link close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A request head with `Content-Length` for `body` (or `length`, to lie about it). */
export function requestHead(
  method: string,
  path: string,
  options: { length?: number; headers?: Record<string, string> } = {},
): string {
  const lines = [`${method} ${path} HTTP/1.1`, "host: localhost"];
  if (options.length !== undefined) {
    lines.push("content-type: application/json", `content-length: ${options.length}`);
  }
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    lines.push(`${name}: ${value}`);
  }
  return lines.join("\r\n") + "\r\n\r\n";
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

function indexOf(bytes: Uint8Array, text: string): number {
  const needle = encoder.encode(text);
  outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
    for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
