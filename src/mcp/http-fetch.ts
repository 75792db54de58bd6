/**
 * The one `fetch` that carries every request of `mcp-pki-proxy` — handshake and MCP alike — so the
 * client config's TLS settings, the outbound proxy and the timeouts apply to all of them.
 *
 * Built on undici (the library behind Node's global fetch) with an `EnvHttpProxyAgent`: it goes
 * through `HTTPS_PROXY` / `HTTP_PROXY` (CONNECT tunnels for https) unless `NO_PROXY` exempts the
 * host, and connects directly when none is set. `transport.ssl.ca_file` is trusted in addition to
 * Node's roots and `cert_file`/`key_file` are presented as the client certificate, on direct and
 * tunnelled connections. Node's global fetch cannot take either per call.
 * @module
 */
import { EnvHttpProxyAgent, fetch as undiciFetch } from 'undici'
import { tlsClientOptions, type TlsClientSettings } from '../transport/tls.js'
import type { FetchFunction } from './client.js'

export interface HttpFetchOptions extends TlsClientSettings {
  /** Milliseconds to establish a connection (TCP + TLS), default 10,000. */
  connectTimeoutMs?: number
  /** Milliseconds to wait for a reply's headers, default 300,000 (a long tool call). 0 = no limit. */
  requestTimeoutMs?: number
  /** Headers added to every request (the caller's own headers win). */
  headers?: Readonly<Record<string, string>>
}

export interface HttpFetch extends FetchFunction {
  /** Closes the connection pool (open streams are cut). */
  close(): Promise<void>
}

/** A fetch over undici with the client TLS settings, the proxy environment and the timeouts. */
export async function createHttpFetch(o: HttpFetchOptions = {}): Promise<HttpFetch> {
  const tls = await tlsClientOptions(o)
  const connectTls = { ...(tls.ca === undefined ? {} : { ca: tls.ca }), ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }), rejectUnauthorized: true }
  const dispatcher = new EnvHttpProxyAgent({
    connect: { ...connectTls, timeout: o.connectTimeoutMs ?? 10_000 },
    // Through a proxy the TLS session with the server runs inside the tunnel: the same settings.
    requestTls: connectTls,
    headersTimeout: o.requestTimeoutMs ?? 300_000,
    // An SSE stream may stay quiet for a long time: no limit between body chunks.
    bodyTimeout: 0,
  })
  const extra = Object.entries(o.headers ?? {})
  const httpFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    // A Request (Node's own class) is taken apart: undici's fetch only knows its own Request class.
    const fromRequest: RequestInit =
      input instanceof Request ? { method: input.method, headers: input.headers, signal: input.signal, ...(input.body === null ? {} : { body: await input.arrayBuffer() }) } : {}
    const merged: RequestInit = { ...fromRequest, ...init }
    if (extra.length > 0) {
      const headers = new Headers(merged.headers)
      for (const [name, value] of extra) if (!headers.has(name)) headers.set(name, value)
      merged.headers = headers
    }
    const url = input instanceof Request ? input.url : input
    return undiciFetch(url, { ...(merged as object), dispatcher } as Parameters<typeof undiciFetch>[1]) as unknown as Promise<Response>
  }
  return Object.assign(httpFetch, { close: () => dispatcher.close() })
}
