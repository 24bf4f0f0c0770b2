/**
 * libpq's connection URL, several hosts included (`postgres://user@h1:5432,h2:5433/db`, which
 * `new URL` refuses), and the host lists of the `hosts` and driver options: taken apart into
 * addresses and the adapter's own parameters.
 *
 * @module
 */
import type { DriverOptions } from "./connection.ts";

/** One server to connect to. */
export interface HostAddress {
  /** Host name or address (or a Unix socket folder, with the `path` driver option). */
  host: string;
  /** TCP port. */
  port: number;
}

/** Whether `value` is a TCP port number. */
export function isPort(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && value > 0 && value <= 65_535;
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`; `undefined` when it is none of these. */
export function parseHost(text: string, defaultPort: number): HostAddress | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:\[\]]+))(?::(\d+))?$/.exec(text);
  if (match === null) return undefined;
  const port = match[3] === undefined ? defaultPort : Number(match[3]);
  if (!isPort(port)) return undefined;
  return { host: match[1] ?? match[2], port };
}

/** The driver's `host` option (postgres.js also takes `"h1,h2"`), or `undefined`. */
export function hostsOfDriver(driver: DriverOptions, port: number): HostAddress[] | undefined {
  const host = driver.host ?? driver.hostname;
  if (host === undefined) return undefined;
  const names = Array.isArray(host) ? host.map(String) : String(host).split(",");
  return names.map((name) => parseHost(name, port) ?? { host: name, port });
}

/** A connection URL taken apart: its hosts and the adapter's own parameters taken out. */
export interface ParsedUrl {
  /** The URL for postgres.js: the first host only, without the adapter's parameters. */
  url: string;
  hosts: HostAddress[];
  user: string;
  database: string;
  targetSessionAttrs: string | undefined;
  loadBalanceHosts: string | undefined;
}

const BAD_URL = "createPostgresPool: the connection URL is not a valid URL " +
  "(expected postgres://user:password@host:5432/db, or several hosts as " +
  "postgres://user:password@host1:5432,host2:5433/db)";

/** Parses libpq's URL form, several hosts included (which `new URL` refuses). */
export function parseUrl(text: string, defaultPort: number): ParsedUrl {
  const scheme = /^(postgres(?:ql)?):\/\//i.exec(text);
  if (scheme === null) throw new TypeError(BAD_URL);
  const rest = text.slice(scheme[0].length);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const at = authority.lastIndexOf("@");
  const hostList = authority.slice(at + 1);
  const hostTexts = hostList === "" ? [] : hostList.split(",");
  let parsed: URL;
  try {
    // The first host stands for all of them, so that URL parses the rest.
    parsed = new URL(
      `${scheme[1]}://${authority.slice(0, at + 1)}${hostTexts[0] ?? ""}${
        authorityEnd < 0 ? "" : rest.slice(authorityEnd)
      }`,
    );
  } catch {
    throw new TypeError(BAD_URL);
  }
  const hosts = hostTexts.map((h) => {
    const address = parseHost(h, defaultPort);
    if (address === undefined) throw new TypeError(BAD_URL);
    return address;
  });
  const params = parsed.searchParams;
  const targetSessionAttrs = params.get("target_session_attrs") ?? undefined;
  const loadBalanceHosts = params.get("load_balance_hosts") ?? undefined;
  params.delete("target_session_attrs");
  params.delete("load_balance_hosts");
  const user = decodeURIComponent(parsed.username);
  return {
    url: parsed.href,
    hosts,
    user,
    database: decodeURIComponent(parsed.pathname.slice(1)),
    targetSessionAttrs,
    loadBalanceHosts,
  };
}
