/**
 * The client side of the HTTP transport: runs the four-message handshake against a server's
 * `POST /auth` endpoint and returns the {@link ClientSession}.
 *
 * Retries: network errors, timeouts and 5xx replies to message 1 are retried with exponential
 * backoff within `retryAttempts`. Message 3 is never resent: if it fails in transit (or the server
 * answers 5xx) the server may already have consumed its nonce, so the whole handshake starts over
 * with a fresh client handshake, within the same retry budget.
 *
 * Keep-alive: by default one process-wide keep-alive node:http(s) agent pair ({@link createNodeFetch}
 * with no socket limit; measured at about half the client CPU of the global fetch per handshake).
 * Pass `fetch` to use another implementation: the global `fetch`, or {@link createNodeFetch} from
 * `tls.ts` to trust a private CA.
 * @module
 */
import { stdin, stderr } from 'node:process'
import { createInterface } from 'node:readline/promises'
import { loadAllowlistFile, updateAllowlistFile } from '../allowlist/allowlist-file.js'
import type { Config, ServerEntryConfig } from '../config/types.js'
import { updatePinnedFingerprint } from '../config/pin-file.js'
import { AuthError } from '../errors.js'
import type { Clock, RandomSource } from '../internal/clock.js'
import type { Signer } from '../keys/signer.js'
import type { Ed25519KeyPair } from '../keys/key-pair.js'
import { createClientHandshake, createServerTrust, type ClientSession, type ServerTrust } from '../handshake/client-handshake.js'
import { classifyNetworkError, isTlsProblem } from './network-errors.js'
import { createNodeFetch, NODE_POST, REPLY_TOO_LARGE, tlsClientSettingsFromConfig, type NodeFetch, type NodePost } from './tls.js'
import { clientKeyFromConfig, clientKeyOptions, type ClientKeyOptions } from './client-key.js'

/** The subset of `fetch` this client uses; the global `fetch` satisfies it. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal },
) => Promise<{ status: number; headers: { get(name: string): string | null }; text(): Promise<string> }>

export interface AuthenticateOptions {
  /** The handshake endpoint, e.g. `https://api.example.com:8443/auth`. */
  url: string
  /** The client key pair; or `signer` (ssh-agent) instead. */
  keyPair?: Ed25519KeyPair
  /** Signs when the private key is not in this process (keys/ssh-agent.ts). */
  signer?: Signer
  /** An OpenSSH certificate blob for the client key, presented in message 3. */
  certificate?: Uint8Array
  /** Decides whether the server's key is trusted (createServerTrust). */
  serverTrust: ServerTrust
  /** Bound into every signature; default the URL's origin. */
  audience?: string
  fetch?: FetchLike | typeof fetch
  /** Per HTTP request, milliseconds (default 30,000). */
  timeoutMs?: number
  /** Extra attempts after the first (default 3). */
  retryAttempts?: number
  /** First retry delay in ms, doubled each retry (default 1,000). */
  retryDelayMs?: number
  timestampTolerance?: number
  clock?: Clock
  random?: RandomSource
}

/** Largest reply body the client reads (a handshake message is a few hundred bytes). */
const MAX_REPLY_BYTES = 64 * 1024

/** The URL without credentials, query or fragment: safe to put in messages. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname}`
  } catch {
    return '<invalid url>'
  }
}

class RetryableError extends Error {
  readonly authError: AuthError
  constructor(authError: AuthError) {
    super(authError.message)
    this.authError = authError
  }
}

interface Reply {
  status: number
  body: unknown
}

async function post(doFetch: FetchLike, url: string, message: unknown, timeoutMs: number): Promise<Reply> {
  const fast = (doFetch as Partial<Record<typeof NODE_POST, NodePost>>)[NODE_POST]
  let status: number
  let text: string
  try {
    const body = JSON.stringify(message)
    if (fast !== undefined) {
      // createNodeFetch: the same request without an AbortSignal, URL parse or Response object.
      ;({ status, text } = await fast(url, body, timeoutMs, MAX_REPLY_BYTES))
    } else {
      const res = await doFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      })
      status = res.status
      text = await res.text()
    }
  } catch (err) {
    const where = safeUrl(url)
    if ((err as { code?: unknown } | undefined)?.code === REPLY_TOO_LARGE) {
      throw new AuthError('transport_error', `${where} replied with more than ${MAX_REPLY_BYTES} bytes; is this an mcp-pki-auth endpoint?`)
    }
    const name = (err as Error | undefined)?.name
    if (name === 'TimeoutError' || name === 'AbortError') {
      throw new RetryableError(new AuthError('transport_timeout', `no reply from ${where} within ${timeoutMs} ms`, { cause: err }))
    }
    const info = classifyNetworkError(err)
    const what = info.explanation === '' ? info.code : `${info.code}: ${info.explanation}`
    const failure = new AuthError('transport_error', isTlsProblem(info.problem) ? `TLS connection to ${where} failed: ${what}` : `cannot reach ${where}: ${what}`, { cause: err })
    // A TLS refusal does not cure itself: retrying only delays the message.
    if (isTlsProblem(info.problem)) throw failure
    throw new RetryableError(failure)
  }
  if (text.length > MAX_REPLY_BYTES / 3 && Buffer.byteLength(text) > MAX_REPLY_BYTES) {
    throw new AuthError('transport_error', `${safeUrl(url)} replied with more than ${MAX_REPLY_BYTES} bytes; is this an mcp-pki-auth endpoint?`)
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    const err = new AuthError('transport_error', `${safeUrl(url)} replied HTTP ${status} with a body that is not JSON; is this an mcp-pki-auth /auth endpoint?`)
    if (status >= 500) throw new RetryableError(err)
    throw err
  }
  return { status, body }
}

function isServerError(reply: Reply): boolean {
  return reply.status >= 500
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

let sharedFetch: Promise<NodeFetch> | undefined

/**
 * The default transport: one process-wide {@link createNodeFetch} (keep-alive node:http/node:https
 * agents, Node's trusted roots plus `NODE_EXTRA_CA_CERTS`, no socket limit — like the global fetch
 * it replaces, at about half the client CPU per request).
 */
function defaultFetch(): Promise<NodeFetch> {
  sharedFetch ??= createNodeFetch({ maxSockets: Infinity })
  return sharedFetch
}

/**
 * Runs the whole handshake over HTTP. Throws AuthError: the server's code (`authentication_failed`,
 * `timestamp_skew`, `server_busy`, …), the client's own checks (`server_key_unknown`,
 * `server_key_mismatch`, `invalid_signature`), or `transport_timeout` / `transport_error`.
 */
export async function authenticate(options: AuthenticateOptions): Promise<ClientSession> {
  const { url, serverTrust } = options
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new TypeError('url must be an absolute http(s) URL')
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError('url must be an http:// or https:// URL')
  const audience = options.audience ?? parsed.origin
  const doFetch = (options.fetch ?? (await defaultFetch())) as FetchLike
  const timeoutMs = options.timeoutMs ?? 30_000
  const retries = Math.max(0, options.retryAttempts ?? 3)
  const baseDelay = Math.max(0, options.retryDelayMs ?? 1000)
  if (!(timeoutMs > 0)) throw new RangeError('timeoutMs must be positive')

  let lastError: AuthError | undefined
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      const wait = Math.min(baseDelay * 2 ** (attempt - 1), 30_000)
      const hinted = lastError?.retryAfter !== undefined ? Math.min(lastError.retryAfter * 1000, 30_000) : 0
      await sleep(Math.max(wait, hinted))
    }
    // A fresh handshake every attempt: message 3 is never sent twice.
    const client = createClientHandshake({
      ...clientKeyOptions(options),
      audience,
      serverTrust,
      ...(options.timestampTolerance === undefined ? {} : { timestampTolerance: options.timestampTolerance }),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.random === undefined ? {} : { random: options.random }),
    })
    try {
      const r2 = await post(doFetch, url, client.start(), timeoutMs)
      if (isServerError(r2)) {
        lastError = replyError(r2, url)
        continue
      }
      const m3 = await client.handleChallenge(r2.body)
      const r4 = await post(doFetch, url, m3, timeoutMs)
      if (isServerError(r4)) {
        // The server may have consumed the nonce: start over, never resend message 3.
        lastError = replyError(r4, url)
        continue
      }
      return client.handleComplete(r4.body)
    } catch (err) {
      if (err instanceof RetryableError) {
        lastError = err.authError
        continue
      }
      throw err
    }
  }
  throw lastError ?? new AuthError('transport_error', `handshake with ${safeUrl(url)} failed`)
}

/** The AuthError a 5xx reply stands for (the server's code when it sent one). */
function replyError(reply: Reply, url: string): AuthError {
  const body = reply.body as { type?: unknown; error?: { code?: unknown; message?: unknown }; retry_after?: unknown } | null
  if (body?.type === 'auth_error' && typeof body.error?.code === 'string') {
    const code = body.error.code === 'server_busy' ? 'server_busy' : 'internal_error'
    const retryAfter = typeof body.retry_after === 'number' ? body.retry_after : undefined
    return new AuthError(code, `server refused: ${typeof body.error.message === 'string' ? body.error.message : body.error.code}`, retryAfter === undefined ? {} : { retryAfter })
  }
  return new AuthError('transport_error', `${safeUrl(url)} replied HTTP ${reply.status}`)
}

/** Finds the `servers:` entry for a URL: same URL, else same origin. */
export function findServerEntry(config: Config, serverUrl: string): ServerEntryConfig | undefined {
  const entries = Object.values(config.servers)
  const exact = entries.find((e) => e.url === serverUrl)
  if (exact) return exact
  let origin: string
  try {
    origin = originOf(serverUrl)
  } catch {
    return undefined
  }
  return entries.find((e) => {
    try {
      return originOf(e.url) === origin
    } catch {
      return false
    }
  })
}

/**
 * The default audience for a handshake URL: its origin, with ws/wss mapped to http/https (one
 * server answers both on one port, under one identity).
 */
export function audienceForUrl(url: string): string {
  return originOf(url)
}

/** Origin with ws/wss mapped to http/https (a server answers both on one port). */
function originOf(url: string): string {
  const u = new URL(url)
  const protocol = u.protocol === 'ws:' ? 'http:' : u.protocol === 'wss:' ? 'https:' : u.protocol
  return new URL(`${protocol}//${u.host}`).origin
}

export interface ConfigClientOptions {
  fetch?: FetchLike | typeof fetch
  /** Asks the user whether to trust an unknown server key (default: a y/N prompt on the terminal). */
  prompt?: (fingerprint: string, serverUrl: string) => Promise<boolean>
  /** Whether a terminal is there to ask (default `process.stdin.isTTY`). */
  interactive?: boolean
  clock?: Clock
  random?: RandomSource
  /** Overrides transport.timeout (ms). */
  timeoutMs?: number
  retryAttempts?: number
  /**
   * The file `config` was loaded from: a pinned server's verified key rotation is written back to
   * its `servers.<name>.fingerprint` there (else the new pin lasts as long as this client).
   */
  configFile?: string
  /** Where pin changes and ignored key updates are reported (default: stderr). */
  onPinLog?: (message: string, level: 'INFO' | 'WARN' | 'ERROR') => void
}

/** What a client built from a config needs for any transport. */
export interface ClientSetup extends ClientKeyOptions {
  /** Hex SHA-256 of the client key. */
  fingerprint: string
  serverTrust: ServerTrust
  audience: string
  serverEntry: ServerEntryConfig | undefined
}

/**
 * Loads the client key and allowlist, the pinned fingerprint for `serverUrl` from `servers:`, and
 * (when `acl.tofu.enabled`) trust on first use: ask on a terminal, remember in the allowlist.
 */
export async function clientSetupFromConfig(config: Config, serverUrl: string, opts: ConfigClientOptions = {}): Promise<ClientSetup> {
  const key = await clientKeyFromConfig(config)
  const allowlist = await loadAllowlistFile(config.acl.allowlist_path, { autoCreate: config.acl.auto_create })
  const serverEntry = findServerEntry(config, serverUrl)
  const audience = serverEntry?.audience ?? originOf(serverUrl)
  const tofu = config.acl.tofu
  const interactive = opts.interactive ?? stdin.isTTY === true
  // One decision per key per process, even with concurrent handshakes (load tests).
  const decisions = new Map<string, Promise<boolean>>()
  const decide = async (fingerprint: string, publicKeyRaw: Buffer): Promise<boolean> => {
    let trusted: boolean
    if (!tofu.prompt_unknown) {
      trusted = true
    } else if (opts.prompt) {
      trusted = await opts.prompt(fingerprint, serverUrl)
    } else if (!interactive) {
      throw new AuthError(
        'server_key_unknown',
        `server key ${fingerprint} is not on the client allowlist and there is no terminal to ask whether to trust it; ` +
          `add it with: mcp-allowlist add --config <client config> --fingerprint ${fingerprint}`,
      )
    } else {
      trusted = await promptTrust(fingerprint, serverUrl)
    }
    if (!trusted) {
      throw new AuthError('server_key_rejected', `server key ${fingerprint} was not trusted; nothing was sent after message 1`)
    }
    if (tofu.remember_decisions) {
      await updateAllowlistFile(config.acl.allowlist_path, (list) => {
        if (list.get(fingerprint) === undefined) {
          list.add({ publicKeyRaw, description: `trusted on first use for ${safeUrl(serverUrl)}`, metadata: { role: 'mcp_server', endpoint: originOf(serverUrl), trust: 'tofu' } })
        }
      })
    }
    return true
  }
  const onUnknownKey = tofu.enabled
    ? (fingerprint: string, publicKeyRaw: Buffer): Promise<boolean> => {
        let pending = decisions.get(fingerprint)
        if (pending === undefined) {
          pending = decide(fingerprint, publicKeyRaw)
          decisions.set(fingerprint, pending)
        }
        return pending
      }
    : undefined
  const serverName = Object.entries(config.servers).find(([, e]) => e === serverEntry)?.[0]
  const configFile = opts.configFile
  const serverTrust = createServerTrust({
    allowlist,
    pinnedFingerprint: serverEntry?.fingerprint ?? null,
    keyRotation: {
      ...(configFile === undefined || serverName === undefined ? {} : { persist: (c) => updatePinnedFingerprint(configFile, serverName, c.from, c.to) }),
      ...(opts.onPinLog === undefined ? {} : { log: opts.onPinLog }),
    },
    host: hostOf(serverUrl),
    timestampTolerance: config.auth.timestamp_tolerance,
    ...(onUnknownKey === undefined ? {} : { onUnknownKey }),
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
  })
  return { ...key, serverTrust, audience, serverEntry }
}

/** The host name of a URL, without IPv6 brackets (what a server's host certificate must list). */
function hostOf(url: string): string {
  return new URL(url).hostname.replace(/^\[(.*)\]$/, '$1')
}

/** Asks on the terminal (stderr) whether to trust a server key. */
export async function promptTrust(fingerprint: string, serverUrl: string): Promise<boolean> {
  const rl = createInterface({ input: stdin, output: stderr })
  try {
    stderr.write(`The server at ${safeUrl(serverUrl)} presented a key that is not on your allowlist.\n`)
    stderr.write(`  SHA-256 fingerprint: ${fingerprint}\n`)
    const answer = await rl.question('Trust this server key? [y/N] ')
    return /^y(es)?$/i.test(answer.trim())
  } finally {
    rl.close()
  }
}

/**
 * The {@link authenticate} options a client config gives for `serverUrl`: key, allowlist, pinned
 * fingerprint, trust on first use, `transport.timeout`/`retry_attempts`/`retry_delay`, and
 * `transport.ssl.ca_file` as the trusted CA for https URLs. Shared by every config-driven client.
 */
export async function authenticateOptionsFromConfig(config: Config, serverUrl: string, opts: ConfigClientOptions = {}): Promise<AuthenticateOptions> {
  const setup = await clientSetupFromConfig(config, serverUrl, opts)
  let doFetch = opts.fetch
  const ssl = config.transport.ssl
  if (doFetch === undefined && serverUrl.startsWith('https:') && (ssl.ca_file !== null || ssl.cert_file !== null)) {
    doFetch = await createNodeFetch(tlsClientSettingsFromConfig(config))
  }
  return {
    url: serverUrl,
    ...clientKeyOptions(setup),
    serverTrust: setup.serverTrust,
    audience: setup.audience,
    timeoutMs: opts.timeoutMs ?? config.transport.timeout * 1000,
    retryAttempts: opts.retryAttempts ?? config.transport.retry_attempts,
    retryDelayMs: config.transport.retry_delay * 1000,
    timestampTolerance: config.auth.timestamp_tolerance,
    ...(doFetch === undefined ? {} : { fetch: doFetch }),
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    ...(opts.random === undefined ? {} : { random: opts.random }),
  }
}

/** {@link authenticate} configured from a client config (see {@link authenticateOptionsFromConfig}). */
export async function authenticateWithConfig(config: Config, serverUrl: string, opts: ConfigClientOptions = {}): Promise<ClientSession> {
  return authenticate(await authenticateOptionsFromConfig(config, serverUrl, opts))
}
