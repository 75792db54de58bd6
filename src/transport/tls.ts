/**
 * TLS for the transports, from `transport.ssl`.
 *
 * Server side ({@link tlsServerOptions}): `cert_file` and `key_file` (PEM) are the server's
 * certificate and key; `ca_file` is the CA bundle client certificates are checked against;
 * `verify_mode` asks for client certificates on top of the ed25519 handshake:
 * `none` (default) → no client certificate requested; `optional` → requested, an unverified one is
 * let through to the handshake (which authenticates the client anyway); `required` → a client
 * certificate signed by `ca_file` (or a public CA) is mandatory, others are cut at the TLS layer.
 *
 * Client side ({@link tlsClientOptions}, {@link createNodeFetch}): the client always verifies the
 * server certificate. `ca_file` is trusted in addition to Node's built-in roots (for a private or
 * self-signed certificate); `cert_file`/`key_file`, when set in a client config, are presented as
 * the client certificate. Node's global fetch cannot take a CA per call (undici's Agent is not a
 * dependency here), so {@link createNodeFetch} is a small fetch-like function over `node:https`
 * with a keep-alive agent; the HTTP client and `authenticateWithConfig` use it for https URLs when
 * `ca_file` is set. (Setting `NODE_EXTRA_CA_CERTS` before start also works with the global fetch.)
 * @module
 */
import { readFile } from 'node:fs/promises'
import * as http from 'node:http'
import * as https from 'node:https'
import { createSecureContext, rootCertificates } from 'node:tls'
import type { Config } from '../config/types.js'
import { AuthError } from '../errors.js'

export interface TlsFiles {
  cert: Buffer
  key: Buffer
  ca?: Buffer
}

async function readPem(path: string, what: string, configPath: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new AuthError('config_invalid', `${configPath}: cannot read the ${what} at ${path} (${code})`, { path: configPath, cause: err })
  }
}

/** https/wss server options from `transport.ssl`. Throws AuthError(config_invalid) for a missing file. */
export async function tlsServerOptions(ssl: Config['transport']['ssl']): Promise<https.ServerOptions> {
  if (ssl.cert_file === null || ssl.key_file === null) {
    throw new AuthError('config_invalid', 'transport.ssl.cert_file and transport.ssl.key_file are required for https/wss', { path: 'transport.ssl' })
  }
  const options: https.ServerOptions = {
    cert: await readPem(ssl.cert_file, 'certificate', 'transport.ssl.cert_file'),
    key: await readPem(ssl.key_file, 'private key', 'transport.ssl.key_file'),
    minVersion: 'TLSv1.2',
  }
  if (ssl.ca_file !== null) options.ca = await readPem(ssl.ca_file, 'CA bundle', 'transport.ssl.ca_file')
  options.requestCert = ssl.verify_mode !== 'none'
  options.rejectUnauthorized = ssl.verify_mode === 'required'
  return options
}

export interface TlsClientSettings {
  /** PEM file of CA certificates to trust in addition to Node's built-in roots. */
  caFile?: string | null
  /** Client certificate and key to present (for servers with verify_mode optional/required). */
  certFile?: string | null
  keyFile?: string | null
}

/** Options for https.request / ws client connections. The server certificate is always verified. */
export interface TlsClientOptions {
  rejectUnauthorized: true
  ca?: string[]
  cert?: Buffer
  key?: Buffer
}

export async function tlsClientOptions(s: TlsClientSettings): Promise<TlsClientOptions> {
  const options: TlsClientOptions = { rejectUnauthorized: true }
  if (s.caFile) options.ca = [...rootCertificates, (await readPem(s.caFile, 'CA bundle', 'transport.ssl.ca_file')).toString('utf8')]
  if (s.certFile && s.keyFile) {
    options.cert = await readPem(s.certFile, 'client certificate', 'transport.ssl.cert_file')
    options.key = await readPem(s.keyFile, 'client key', 'transport.ssl.key_file')
  }
  return options
}

/** The client TLS settings of a client config. */
export function tlsClientSettingsFromConfig(config: Config): TlsClientSettings {
  return { caFile: config.transport.ssl.ca_file, certFile: config.transport.ssl.cert_file, keyFile: config.transport.ssl.key_file }
}

export interface NodeFetchOptions extends TlsClientSettings {
  /** Sockets kept per origin (default 10). */
  maxSockets?: number
}

interface FetchInit {
  method: string
  headers: Record<string, string>
  body: string
  signal: AbortSignal
}

interface FetchResponse {
  status: number
  headers: { get(name: string): string | null }
  text(): Promise<string>
}

/**
 * The fast path {@link createNodeFetch} also offers to the handshake client (`authenticate()` uses it
 * when the fetch it was given carries it): POST a JSON string, read the reply as text, with a plain
 * timer instead of an AbortSignal. Rejects with an Error named `TimeoutError` after `timeoutMs`, and
 * with the socket's error otherwise — what the fetch-shaped call would reject with.
 */
export const NODE_POST: unique symbol = Symbol('mcp-pki-auth.nodePost')
export type NodePost = (url: string, body: string, timeoutMs: number, maxReplyBytes?: number) => Promise<{ status: number; text: string }>
/** `code` of the error {@link NodePost} rejects with when the reply passes `maxReplyBytes` (the connection is cut there). */
export const REPLY_TOO_LARGE = 'ERR_MCP_PKI_REPLY_TOO_LARGE'
export type NodeFetch = ((url: string, init: FetchInit) => Promise<FetchResponse>) & { [NODE_POST]: NodePost }

interface Target {
  lib: typeof http | typeof https
  options: http.RequestOptions
}

/**
 * A minimal fetch over node:http/node:https with keep-alive agents, trusting `caFile`. Enough for
 * the handshake client (POST a string body, read a text reply); rejects with an Error named
 * `AbortError`/`TimeoutError` when the signal fires, like fetch.
 */
export async function createNodeFetch(o: NodeFetchOptions = {}): Promise<NodeFetch> {
  const { ca, cert, key, rejectUnauthorized } = await tlsClientOptions(o)
  const maxSockets = o.maxSockets ?? 10
  // The CA bundle and client certificate go in one secure context built here, not as agent options:
  // https.Agent folds `ca`/`cert`/`key` into its pool key on every request (a ~200 KB string with
  // Node's roots included), which cost more than the rest of the request put together.
  const secureContext = ca !== undefined || cert !== undefined ? createSecureContext({ ...(ca === undefined ? {} : { ca }), ...(cert === undefined ? {} : { cert, key }) }) : undefined
  const httpsAgent = new https.Agent({ keepAlive: true, maxSockets, rejectUnauthorized, ...(secureContext === undefined ? {} : { secureContext }) })
  const httpAgent = new http.Agent({ keepAlive: true, maxSockets })
  // URL parsing and option building once per URL, not once per request (a handshake posts twice).
  const targets = new Map<string, Target>()
  const targetOf = (url: string): Target => {
    let t = targets.get(url)
    if (t === undefined) {
      const u = new URL(url)
      const secure = u.protocol === 'https:'
      const options: http.RequestOptions = {
        protocol: u.protocol,
        hostname: u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname,
        port: u.port === '' ? (secure ? 443 : 80) : Number(u.port),
        path: `${u.pathname}${u.search}`,
        agent: secure ? httpsAgent : httpAgent,
      }
      if (u.username !== '' || u.password !== '') options.auth = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`
      t = { lib: secure ? https : http, options }
      if (targets.size >= 64) targets.clear()
      targets.set(url, t)
    }
    return t
  }

  /** One request; `onDone` settles exactly once (reply, socket error or `abort`). */
  const send = (
    url: string,
    method: string,
    headers: http.OutgoingHttpHeaders,
    body: string,
    maxReplyBytes: number,
    onDone: (err: Error | undefined, res?: http.IncomingMessage, text?: string) => void,
  ): http.ClientRequest => {
    const { lib, options } = targetOf(url)
    let settled = false
    const done = (err: Error | undefined, res?: http.IncomingMessage, text?: string): void => {
      if (settled) return
      settled = true
      onDone(err, res, text)
    }
    const req = lib.request({ ...options, method, headers }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.length
        if (size > maxReplyBytes) {
          // Stop reading at the cap: a hostile server cannot make the client buffer an endless reply.
          const err = Object.assign(new Error(`reply larger than ${maxReplyBytes} bytes`), { code: REPLY_TOO_LARGE })
          done(err)
          req.destroy(err)
          return
        }
        chunks.push(c)
      })
      res.on('error', (err) => done(err))
      res.on('end', () => done(undefined, res, (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8')))
    })
    req.on('error', (err) => done(err))
    req.end(body)
    return req
  }

  const nodeFetch = (url: string, init: FetchInit): Promise<FetchResponse> =>
    new Promise<FetchResponse>((resolve, reject) => {
      if (init.signal.aborted) {
        reject(abortReason(init.signal))
        return
      }
      const onAbort = (): void => {
        req.destroy(abortReason(init.signal))
      }
      const req = send(url, init.method, { ...init.headers, 'content-length': String(Buffer.byteLength(init.body)) }, init.body, Infinity, (err, res, text) => {
        init.signal.removeEventListener('abort', onAbort)
        if (err !== undefined) {
          reject(err)
          return
        }
        resolve({
          status: res!.statusCode ?? 0,
          headers: { get: (name) => headerValue(res!.headers[name.toLowerCase()]) },
          text: () => Promise.resolve(text!),
        })
      })
      init.signal.addEventListener('abort', onAbort, { once: true })
    })

  const post: NodePost = (url, body, timeoutMs, maxReplyBytes = Infinity) =>
    new Promise((resolve, reject) => {
      const headers = { 'content-type': 'application/json', accept: 'application/json', 'content-length': String(Buffer.byteLength(body)) }
      const req = send(url, 'POST', headers, body, maxReplyBytes, (err, res, text) => {
        clearTimeout(timer)
        if (err !== undefined) reject(err)
        else resolve({ status: res!.statusCode ?? 0, text: text! })
      })
      const timer = setTimeout(() => {
        const err = new Error(`no reply within ${timeoutMs} ms`)
        err.name = 'TimeoutError'
        req.destroy(err)
      }, timeoutMs)
    })

  return Object.assign(nodeFetch, { [NODE_POST]: post })
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  if (reason instanceof Error) return reason
  const err = new Error('the operation was aborted')
  err.name = 'AbortError'
  return err
}

function headerValue(v: string | string[] | undefined): string | null {
  if (v === undefined) return null
  return Array.isArray(v) ? v.join(', ') : v
}
