/**
 * The default audience check of a server configured without `auth.audience`: a message 1 must
 * name this machine (one of its host names or addresses) and the port the request arrived on.
 *
 * The port comes from the server's own socket and the names from the operating system, never
 * from the request's headers: a relay that forwards a client's handshake (and writes any Host
 * header it likes) still cannot make a session meant for `https://other.example` or for another
 * port of this machine acceptable here. Behind a reverse proxy that clients reach by a public
 * name, set `auth.audience` to that URL.
 * @module
 */
import { lookup } from 'node:dns'
import { isIP } from 'node:net'
import { hostname, networkInterfaces } from 'node:os'

const REFRESH_MS = 60_000

interface LocalNames {
  /** Every name and address of this machine, as `URL.hostname` spells them (IPv6 in brackets). */
  names: ReadonlySet<string>
  /** The host name itself (and its first label). */
  own: ReadonlySet<string>
  at: number
}
let cached: LocalNames | undefined

/**
 * Addresses this machine's host name resolves to here (canonical, as `canonicalIp` spells them),
 * looked up in the background when the names are refreshed; undefined until the first answer.
 */
let hostAddresses: ReadonlySet<string> | undefined

/**
 * Host names and addresses of this machine, as `URL.hostname` spells them (IPv6 in brackets).
 * The set is a new object whenever what it stands for may have changed (a refresh, or the answer
 * to the host name lookup), so callers may cache verdicts per set.
 */
export function localHostNames(now: number = Date.now()): ReadonlySet<string> {
  return localNames(now).names
}

function localNames(now: number = Date.now()): LocalNames {
  if (cached !== undefined && now - cached.at < REFRESH_MS) return cached
  const names = new Set<string>(['localhost', '127.0.0.1', '[::1]'])
  const own = new Set<string>()
  const add = (name: string, into: Set<string> = names): void => {
    const n = name.trim().toLowerCase()
    if (n === '' || n.includes('%')) return // zone-scoped link-local addresses are not URL hosts
    into.add(n.includes(':') ? `[${n}]` : n)
  }
  let h: string | undefined
  try {
    h = hostname()
    for (const n of [h, h.split('.')[0]!]) {
      add(n)
      add(n, own)
    }
  } catch {
    // no host name: the loopback names remain
  }
  try {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) add(a.address)
  } catch {
    // no interface list: the loopback names remain
  }
  const fresh: LocalNames = { names, own, at: now }
  cached = fresh
  if (h !== undefined) {
    lookup(h, { all: true }, (err, list) => {
      if (err) return
      const set = new Set<string>()
      for (const a of list) {
        const ip = canonicalIp(a.address)
        if (ip !== undefined) set.add(ip)
      }
      hostAddresses = set
      // A new set identity (same contents, same age): verdicts cached before the answer are redone.
      if (cached === fresh) cached = { ...fresh, names: new Set(fresh.names) }
    })
  }
  return fresh
}

const DEFAULT_PORT: Record<string, number> = { 'http:': 80, 'ws:': 80, 'https:': 443, 'wss:': 443 }

/**
 * An IP address as `URL.hostname` spells it: IPv4 as is (IPv4-mapped IPv6 as IPv4), IPv6 in
 * brackets in the URL standard's compressed form. Undefined when `address` is not an IP address.
 */
export function canonicalIp(address: string): string | undefined {
  let a = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address
  const zone = a.indexOf('%')
  if (zone >= 0) a = a.slice(0, zone)
  const kind = isIP(a)
  if (kind === 4) return a
  if (kind !== 6) return undefined
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a)
  if (mapped && isIP(mapped[1]!) === 4) return mapped[1]!
  try {
    const host = new URL(`http://[${a}]/`).hostname
    const inner = host.slice(1, -1)
    // ::ffff:a.b.c.d spelled in hex by the URL parser
    const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(inner)
    if (hex) {
      const hi = parseInt(hex[1]!, 16)
      const lo = parseInt(hex[2]!, 16)
      return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`
    }
    return host
  } catch {
    return undefined
  }
}

function isLoopback(ip: string): boolean {
  return ip === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(ip)
}

/**
 * True when `audience` is an http(s)/ws(s) URL whose port (explicit or the scheme's default) is
 * `localPort` and whose host names the socket the message arrived on:
 * - an IP address must be the socket's local address (`localAddress`, when known);
 * - `localhost` counts only on a 127.0.0.1 or ::1 socket (a relay on a client's machine cannot turn
 *   "localhost" into a remote server, nor a server on 127.0.0.2 into the one on 127.0.0.1);
 * - the host name, on a loopback socket, only when it resolves here to that address;
 * - other names must be this machine's host name (or one of `extraNames`, the configured listen host).
 * Without `localAddress` every address of this machine counts.
 */
export function namesThisServer(audience: string, localPort: number, extraNames?: ReadonlySet<string>, localAddress?: string): boolean {
  let url: URL
  try {
    url = new URL(audience)
  } catch {
    return false
  }
  const defaultPort = DEFAULT_PORT[url.protocol]
  if (defaultPort === undefined || url.username !== '' || url.password !== '') return false
  const port = url.port === '' ? defaultPort : Number(url.port)
  if (port !== localPort) return false
  const host = url.hostname.toLowerCase()
  const local = localAddress === undefined ? undefined : canonicalIp(localAddress)
  const { names, own } = localNames()
  if (local !== undefined) {
    const ip = canonicalIp(host)
    if (ip !== undefined) return ip === local
    // localhost means 127.0.0.1 / ::1: a server on another loopback address is another server.
    if (host === 'localhost') return local === '127.0.0.1' || local === '[::1]'
    // On a loopback socket the host name must resolve here to that address (Debian maps it to
    // 127.0.1.1); a remote client reached us by it through its own resolver, so it counts.
    if (own.has(host) && hostAddresses !== undefined && isLoopback(local)) return hostAddresses.has(local)
  }
  return names.has(host) || (extraNames?.has(host) ?? false)
}
