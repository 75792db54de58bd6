/**
 * Authenticating an MCP client built with the official TypeScript SDK (1.x and 2.x).
 *
 * {@link createAuthFetch} returns a `fetch` for `StreamableHTTPClientTransport({ fetch })`. On
 * first use it runs the handshake against the server's `/auth` endpoint (verifying and pinning the
 * server key), then sends every request with `Authorization: Bearer <token>` and a fresh
 * `MCP-PKI-Proof` over that request's method, target and body. It renews the session shortly
 * before it expires (in the server's clock, as told at the handshake) and never runs two handshakes
 * at once. It sends a request again only when the server's `401` is authenticated under the session
 * key for the proof just sent and says the request did not run: `proof_stale` (once, same session)
 * or `session_expired` (once, new session). Any other `401` is handed back, and the session is
 * dropped so the next request runs a new handshake (docs/PROTOCOL.md §8).
 *
 * The same `fetch` serves SDK 1.x (`@modelcontextprotocol/sdk`) and 2.x (`@modelcontextprotocol/client`):
 * both `StreamableHTTPClientTransport`s take `{ fetch }`. In 2.x, {@link createAuthProvider} can
 * also be passed as the transport's `authProvider` (optional; see there). It cannot replace the
 * `fetch`: every request needs a proof over that request, which only a fetch wrapper sees.
 * Do not pass the SDK's OAuth `authProvider` (1.x or 2.x): it runs OAuth discovery on a 401.
 * @module
 */
import { loadConfig } from '../config/load-config.js'
import type { Config } from '../config/types.js'
import { AuthError, PROTOCOL_ERROR_CODES, type ProtocolErrorCode } from '../errors.js'
import type { ClientSession } from '../handshake/client-handshake.js'
import { systemClock } from '../internal/clock.js'
import { EPOCH_HEADER, PROOF_HEADER, REFUSAL_HEADER } from '../protocol/constants.js'
import { verifiedRefusal } from '../session/refusal-answer.js'
import { verifiedStaleEpoch } from '../session/stale-answer.js'
import { requestProof } from '../session/session-token.js'
import { holdController, requestSignal } from './request-signal.js'
import { authenticate, authenticateOptionsFromConfig, safeUrl, type AuthenticateOptions, type ConfigClientOptions, type FetchLike as HandshakeFetch } from '../transport/http-client.js'
import { tlsClientSettingsFromConfig } from '../transport/tls.js'

/** A `fetch` as the SDK transports call it. */
export type FetchFunction = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

/** The handshake settings createAuthFetch passes on to {@link authenticate} as they are. */
const HANDSHAKE_SETTINGS = ['keyPair', 'signer', 'certificate', 'audience', 'timeoutMs', 'retryAttempts', 'retryDelayMs', 'timestampTolerance', 'clock', 'random'] as const
type HandshakeSettings = Pick<AuthenticateOptions, 'serverTrust' | (typeof HANDSHAKE_SETTINGS)[number]>

export interface AuthFetchOptions extends HandshakeSettings {
  /** The MCP endpoint (`http://127.0.0.1:8443/mcp`); the handshake endpoint defaults to `/auth` on its origin. */
  url?: string | URL
  /** The handshake endpoint; give this or `url`. */
  authUrl?: string | URL
  /** The fetch that carries MCP requests (default the global fetch). */
  fetch?: FetchFunction
  /** The fetch that carries the handshake (default `fetch`). */
  handshakeFetch?: HandshakeFetch | FetchFunction
  /** Renew this long before the session expires (default 60 s; at most half the session's lifetime). */
  refreshBeforeMs?: number
  /** Called after every successful handshake (e.g. to log the server fingerprint). */
  onSession?: (session: ClientSession) => void
}

/** The fetch returned by {@link createAuthFetch}, plus a few handles on its session. */
export interface AuthFetch extends FetchFunction {
  /** The current session, running the handshake if there is none or it is about to expire. */
  session(): Promise<ClientSession>
  /** The session in use, if any (no handshake). */
  readonly current: ClientSession | undefined
  /** Handshakes completed so far. */
  readonly handshakes: number
  /** Forget the session; the next request runs a new handshake. */
  invalidate(): void
  /** The handshake endpoint. */
  readonly authUrl: string
}

type BodyBytes = string | Uint8Array | undefined

async function bodyBytes(body: unknown): Promise<BodyBytes> {
  if (body === undefined || body === null) return undefined
  if (typeof body === 'string') return body
  if (body instanceof Uint8Array) return body
  if (body instanceof ArrayBuffer) return new Uint8Array(body)
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
  if (body instanceof URLSearchParams) return body.toString()
  if (body instanceof Blob) return new Uint8Array(await body.arrayBuffer())
  if (body instanceof ReadableStream) return new Uint8Array(await new Response(body).arrayBuffer())
  throw new TypeError('createAuthFetch: request body must be a string, bytes, Blob, URLSearchParams or stream (it is signed)')
}

function held(res: Response, controller: AbortController | undefined): Response {
  if (controller !== undefined) holdController(res, controller)
  return res
}

/** `Headers#forEach` callback with the record as `this`: no closure per request. */
function copyHeader(this: Record<string, string>, value: string, name: string): void {
  this[name] = value
}

/**
 * Header names and values as a plain record with lowercase names (a name given twice keeps the
 * fetch spec's combined `a, b`; `set-cookie` is not a request header).
 */
function headerRecord(init: RequestInit['headers']): Record<string, string> {
  const out: Record<string, string> = {}
  if (init === undefined) return out
  ;(init instanceof Headers ? init : new Headers(init)).forEach(copyHeader, out)
  return out
}

/**
 * A `fetch` that authenticates every request. Throws (rejects) AuthError when the handshake
 * fails: `server_key_mismatch`, `server_key_unknown`, `authentication_failed`, `transport_error` …
 * @example
 * const transport = new StreamableHTTPClientTransport(new URL(url), { fetch: createAuthFetch({ url, keyPair, serverTrust }) })
 */
export function createAuthFetch(options: AuthFetchOptions): AuthFetch {
  const { keyPair, signer, serverTrust } = options
  if (!keyPair?.privateKey && signer === undefined) throw new TypeError('keyPair (or signer) is required')
  if (typeof serverTrust !== 'function') throw new TypeError('serverTrust is required (createServerTrust)')
  const base = options.authUrl ?? options.url
  if (base === undefined) throw new TypeError('url (the MCP endpoint) or authUrl is required')
  const authUrl = options.authUrl !== undefined ? new URL(String(options.authUrl)).href : new URL('/auth', String(options.url)).href
  const origin = new URL(authUrl).origin
  const baseFetch: FetchFunction = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
  const clock = options.clock ?? systemClock
  const refreshBefore = Math.max(0, options.refreshBeforeMs ?? 60_000)

  let current: ClientSession | undefined
  let obtainedAt = 0
  let pending: Promise<ClientSession> | undefined
  let handshakes = 0

  // What authenticate() is given on every handshake: the settings the caller set, as they are.
  const handshakeOptions: AuthenticateOptions = { url: authUrl, serverTrust }
  for (const k of HANDSHAKE_SETTINGS) if (options[k] !== undefined) (handshakeOptions as unknown as Record<string, unknown>)[k] = options[k]
  const handshakeFetch = options.handshakeFetch ?? options.fetch
  if (handshakeFetch !== undefined) handshakeOptions.fetch = handshakeFetch as HandshakeFetch

  function handshake(): Promise<ClientSession> {
    if (pending !== undefined) return pending
    const run = authenticate(handshakeOptions).then((s) => {
      current = s
      obtainedAt = clock()
      handshakes++
      options.onSession?.(s)
      return s
    })
    pending = run.finally(() => {
      pending = undefined
    })
    return pending
  }

  /** Not expiring within the margin, in the server's clock as estimated at the handshake (expiresAt is the server's). */
  function fresh(s: ClientSession | undefined): s is ClientSession {
    if (s === undefined) return false
    const margin = Math.min(refreshBefore, Math.max(0, (s.expiresAt - obtainedAt - s.clockOffsetMs) / 2))
    return clock() + s.clockOffsetMs < s.expiresAt - margin
  }

  async function session(): Promise<ClientSession> {
    if (pending !== undefined) return pending
    return fresh(current) ? current : handshake()
  }

  /** After a 401: a new session, unless another request already replaced the one that failed. */
  function renew(failed: ClientSession): Promise<ClientSession> {
    if (pending !== undefined) return pending
    if (current !== undefined && current !== failed && fresh(current)) return Promise.resolve(current)
    current = undefined
    return handshake()
  }

  /** After a 401 that is not re-sent: forget the session (unless already replaced); the next request handshakes. */
  function drop(failed: ClientSession): void {
    if (current === failed) current = undefined
  }

  // The last URL checked, by its text: the SDK sends every request to one URL object.
  let lastHref = ''
  let lastTarget = ''

  /** The request target of `url` (path and query), after checking that it is this session's origin. */
  function targetOf(url: URL): string {
    const href = url.href
    if (href === lastHref) return lastTarget
    if (url.origin !== origin) {
      throw new AuthError('transport_error', `refusing to send the session for ${origin} to ${safeUrl(href)}`)
    }
    lastTarget = url.pathname + url.search
    lastHref = href
    return lastTarget
  }

  /**
   * Sends one request under `s`: the token and a fresh proof in `headers` (the record handed to
   * fetch, never the caller's), then `fetch`. A function of its arguments, not a closure made per
   * request (docs/benchmarks.md, "tools/call").
   */
  function send(s: ClientSession, url: URL, rest: RequestInit, headers: Record<string, string>, target: string, body: BodyBytes): Promise<Response> {
    headers.authorization = `Bearer ${s.token}`
    headers[PROOF_HEADER] = requestProof(s, rest.method!, target, headers['mcp-session-id'] ?? '', body ?? null, clock() + s.clockOffsetMs)
    return baseFetch(url, rest)
  }

  const authFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    let url: URL
    let headers: Record<string, string>
    let method: string
    let body: BodyBytes
    let rest: RequestInit
    if (input instanceof Request) {
      url = new URL(input.url)
      method = (init?.method ?? input.method).toUpperCase()
      headers = headerRecord(input.headers)
      if (init?.headers !== undefined) Object.assign(headers, headerRecord(init.headers))
      body = init?.body !== undefined ? await bodyBytes(init.body) : input.body === null ? undefined : new Uint8Array(await input.arrayBuffer())
      rest = { signal: input.signal, redirect: input.redirect, ...init }
    } else {
      // The SDK passes a URL object: no need to parse it again.
      url = input instanceof URL ? input : new URL(String(input))
      method = init?.method === undefined ? 'GET' : init.method.toUpperCase()
      // The caller's headers as a plain record (never mutate theirs): fetch builds its own Headers
      // from it, where a Headers copy was built, sorted and copied once more.
      headers = headerRecord(init?.headers)
      const b = init?.body
      body = b === undefined || b === null || typeof b === 'string' ? (b ?? undefined) : await bodyBytes(b)
      rest = { ...init }
    }
    const target = targetOf(url)
    if (body !== undefined) rest.body = body as NonNullable<RequestInit['body']>
    rest.method = method
    rest.headers = headers
    // A signal of its own (shared with a few neighbouring requests), following the caller's (the
    // SDK's long-lived) signal: see request-signal.ts for what one undici listener per request on
    // that signal costs.
    const controller = rest.signal ? requestSignal(rest.signal) : undefined
    if (controller !== undefined) rest.signal = controller.signal
    const s = pending === undefined && fresh(current) ? current : await session()
    let res = await send(s, url, rest, headers, target, body)
    if (res.status !== 401) return held(res, controller)
    // proof_stale: the server's replay memory restarted (new epoch). The session is still good:
    // one retry with a proof naming the new epoch, no new handshake — but only when the answer is
    // authenticated under the session key for this very proof (stale-answer.ts). Anyone on the
    // path can forge an unauthenticated 401 after the server ran the request; re-sending on one
    // would run it twice. Such an answer is handed back unchanged.
    if (res.headers.has(EPOCH_HEADER)) {
      // (Compared with the epoch the sent proof named, not s.replayEpoch: a concurrent request may
      // have taken the new epoch already.)
      const epoch = verifiedStaleEpoch(s.sessionKey, headers[PROOF_HEADER]!, res.headers.get(EPOCH_HEADER))
      if (epoch === undefined) return held(res, controller)
      await res.body?.cancel().catch(() => {})
      s.replayEpoch = epoch
      res = await send(s, url, rest, headers, target, body)
      if (res.status !== 401) return held(res, controller)
    }
    // Any other 401: a new session and one re-send only on an authenticated session_expired for
    // the proof just sent (refusal-answer.ts: the server attests it only for a request that never
    // ran and never will). Anything else — unauthenticated (session_invalid: a token the server
    // cannot open; or forged), or a code where a re-send is wrong — is handed back, and the session
    // dropped so the next request handshakes afresh.
    if (verifiedRefusal(s.sessionKey, headers[PROOF_HEADER]!, res.headers.get(REFUSAL_HEADER)) !== "session_expired") {
      drop(s)
      return held(res, controller)
    }
    await res.body?.cancel().catch(() => {})
    const renewed = await renew(s)
    res = await send(renewed, url, rest, headers, target, body)
    if (res.status === 401) drop(renewed)
    return held(res, controller)
  }

  return Object.defineProperties(authFetch, {
    session: { value: session },
    invalidate: {
      value: () => {
        current = undefined
      },
    },
    current: { get: () => current },
    handshakes: { get: () => handshakes },
    authUrl: { value: authUrl },
  }) as AuthFetch
}

export interface AuthFetchFromConfigOptions extends ConfigClientOptions {
  /** The handshake endpoint (default `/auth` on the MCP URL's origin). */
  authUrl?: string
  /** The fetch that carries MCP requests (default the global fetch). */
  mcpFetch?: FetchFunction
  refreshBeforeMs?: number
  onSession?: (session: ClientSession) => void
}

/**
 * {@link createAuthFetch} from a client config: the client key, the client allowlist of server
 * keys, the fingerprint pinned for this server under `servers:`, trust on first use when enabled,
 * and `transport.timeout` / `retry_attempts` / `retry_delay`. Loads the key once.
 * For https, `transport.ssl.ca_file` (trusted CA) and `cert_file`/`key_file` (client certificate)
 * apply to the handshake and to the MCP requests (through undici, loaded only then), unless
 * `mcpFetch` is given.
 */
export async function createAuthFetchFromConfig(config: string | Config, mcpUrl: string | URL, opts: AuthFetchFromConfigOptions = {}): Promise<AuthFetch> {
  const cfg = typeof config === 'string' ? await loadConfig(config) : config
  const authUrl = opts.authUrl ?? new URL('/auth', String(mcpUrl)).href
  const withFile = typeof config === 'string' && opts.configFile === undefined ? { ...opts, configFile: config } : opts
  const { fetch: handshakeFetch, ...handshake } = await authenticateOptionsFromConfig(cfg, authUrl, withFile)
  const ssl = cfg.transport.ssl
  let mcpFetch = opts.mcpFetch
  if (mcpFetch === undefined && String(mcpUrl).startsWith('https:') && (ssl.ca_file !== null || ssl.cert_file !== null)) {
    const { createHttpFetch } = await import('./http-fetch.js')
    mcpFetch = await createHttpFetch(tlsClientSettingsFromConfig(cfg))
  }
  return createAuthFetch({
    ...handshake,
    url: String(mcpUrl),
    authUrl,
    ...(mcpFetch === undefined ? {} : { fetch: mcpFetch }),
    ...(handshakeFetch === undefined ? {} : { handshakeFetch: handshakeFetch as HandshakeFetch }),
    ...(opts.refreshBeforeMs === undefined ? {} : { refreshBeforeMs: opts.refreshBeforeMs }),
    ...(opts.onSession === undefined ? {} : { onSession: opts.onSession }),
  })
}

/**
 * SDK 2.x's minimal `AuthProvider` (`@modelcontextprotocol/client`: `token()` before every request,
 * `onUnauthorized(ctx)` on a 401 before its one retry), structurally, so this module needs no 2.x.
 */
export interface McpAuthProvider {
  token(): Promise<string | undefined>
  onUnauthorized(ctx?: unknown): Promise<void>
}

/**
 * An SDK 2.x `authProvider` backed by `authFetch`, for
 * `new StreamableHTTPClientTransport(url, { fetch: authFetch, authProvider: createAuthProvider(authFetch) })`.
 *
 * Optional: `authFetch` alone authenticates, renews and re-sends where that is safe. With it,
 * `token()` is the session's token (running the handshake on first use, so a refused server key
 * fails the connect with the handshake's `AuthError`). A 401 that reaches the transport is one
 * `authFetch` chose not to re-send (docs/PROTOCOL.md §8: not an authenticated `session_expired`, so
 * the request may have run): `onUnauthorized()` drops the session and rejects with an AuthError
 * naming the server's code, which stops the transport's own retry (it would send the request again).
 * The next request runs a new handshake. The `Authorization` header is always set by `authFetch`
 * itself, next to the proof.
 */
export function createAuthProvider(authFetch: AuthFetch): McpAuthProvider {
  if (typeof authFetch !== 'function' || typeof authFetch.session !== 'function' || typeof authFetch.invalidate !== 'function') {
    throw new TypeError('createAuthProvider needs the fetch returned by createAuthFetch')
  }
  return {
    token: async () => (await authFetch.session()).token,
    onUnauthorized: async (ctx?: unknown) => {
      authFetch.invalidate()
      const code = await refusedCode(ctx)
      throw new AuthError(
        isProtocolCode(code) ? code : 'authentication_failed',
        `the server refused the request (HTTP 401 ${code ?? 'without a code'}); it was not sent again, since a refusal that is not an authenticated session_expired may follow a request that ran (docs/PROTOCOL.md §8). The session was dropped: the next request runs a new handshake`,
      )
    },
  }
}

/** The `error` code of the 401 the SDK hands to onUnauthorized (`{ response }`), if it says one. */
async function refusedCode(ctx: unknown): Promise<string | undefined> {
  const response = (ctx as { response?: unknown } | undefined)?.response
  if (!(response instanceof Response)) return undefined
  const body = (await response
    .clone()
    .json()
    .catch(() => undefined)) as { error?: unknown } | undefined
  return typeof body?.error === 'string' && /^[a-z_]{1,32}$/.test(body.error) ? body.error : undefined
}

function isProtocolCode(code: string | undefined): code is ProtocolErrorCode {
  return code !== undefined && (PROTOCOL_ERROR_CODES as readonly string[]).includes(code)
}
