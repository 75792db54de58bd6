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
import { hostname, networkInterfaces } from 'node:os'

const REFRESH_MS = 60_000
let cached: { names: ReadonlySet<string>; at: number } | undefined

/** Host names and addresses of this machine, as `URL.hostname` spells them (IPv6 in brackets). */
export function localHostNames(now: number = Date.now()): ReadonlySet<string> {
  if (cached !== undefined && now - cached.at < REFRESH_MS) return cached.names
  const names = new Set<string>(['localhost', '127.0.0.1', '[::1]'])
  const add = (name: string): void => {
    const n = name.trim().toLowerCase()
    if (n === '' || n.includes('%')) return // zone-scoped link-local addresses are not URL hosts
    names.add(n.includes(':') ? `[${n}]` : n)
  }
  try {
    const h = hostname()
    add(h)
    if (h.includes('.')) add(h.split('.')[0]!)
  } catch {
    // no host name: the loopback names remain
  }
  try {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) add(a.address)
  } catch {
    // no interface list: the loopback names remain
  }
  cached = { names, at: now }
  return names
}

const DEFAULT_PORT: Record<string, number> = { 'http:': 80, 'ws:': 80, 'https:': 443, 'wss:': 443 }

/**
 * True when `audience` is an http(s)/ws(s) URL whose host names this machine and whose port
 * (explicit or the scheme's default) is `localPort`. Extra names (the configured listen host)
 * count as this machine too.
 */
export function namesThisServer(audience: string, localPort: number, extraNames?: ReadonlySet<string>): boolean {
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
  return localHostNames().has(host) || (extraNames?.has(host) ?? false)
}
