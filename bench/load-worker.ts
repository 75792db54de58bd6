/**
 * The load generator of the network benchmarks, in its own process. Commands over IPC:
 *   seq {target, n, warmup}                              → latency percentiles (ms) of sequential handshakes
 *   throughput {target, concurrency, durationMs, warmupMs} → handshakes/s with `concurrency` client loops
 *
 * Ours: the project's own client (`authenticate` over a keep-alive node:http(s) agent with
 * maxSockets = concurrency, or the WebSocket client). The peer: a fresh `tls.connect` per
 * handshake (no session offered, so every one is a full TLS 1.3 handshake with client certificate),
 * one tiny request and reply. The floors: two bare keep-alive POSTs (`echo`), and the protocol's
 * crypto over them with nothing else (`cryptofloor`, bench/handshake-floor.ts).
 * @module
 */
import { readFileSync } from 'node:fs'
import * as http from 'node:http'
import * as tls from 'node:tls'
import { createServerTrust, type ServerTrust } from '../src/handshake/client-handshake.js'
import { fingerprintOf, keyPairFromPrivateKey, privateKeyFromSeed, type Ed25519KeyPair } from '../src/keys/key-pair.js'
import { authenticate } from '../src/transport/http-client.js'
import { createNodeFetch } from '../src/transport/tls.js'
import { authenticateWebSocket } from '../src/transport/ws-client.js'
import { makeFloorClient } from './handshake-floor.js'
import { latencySummary, serve, type Message } from './lib.js'

export interface OursTarget {
  kind: 'ours'
  transport: 'http' | 'https' | 'ws'
  url: string
  clientSeed: string
  serverPublicKey: string
  ca: string
}
export interface TlsTarget {
  kind: 'tls'
  port: number
  certs: { ca: string; clientKey: string; clientCert: string }
}
/** Two bare keep-alive POSTs of handshake-sized JSON: the network floor of our two round trips. */
export interface EchoTarget {
  kind: 'echo'
  port: number
}
/** The protocol's crypto over two keep-alive POSTs and nothing else (bench/handshake-floor.ts). */
export interface CryptoFloorTarget {
  kind: 'cryptofloor'
  port: number
  clientSeed: string
  serverPublicKey: string
}
export type Target = OursTarget | TlsTarget | EchoTarget | CryptoFloorTarget

type Handshake = () => Promise<void>

/** Creates a handshake function for `concurrency` parallel loops (shared pool). */
async function makeClient(t: Target, concurrency: number): Promise<{ run: Handshake; close: () => void }> {
  if (t.kind === 'tls') return makeTlsClient(t)
  if (t.kind === 'echo') return makeEchoClient(t, concurrency)
  if (t.kind === 'cryptofloor') return makeFloorClient({ ...t, concurrency })
  const keyPair: Ed25519KeyPair = keyPairFromPrivateKey(privateKeyFromSeed(Buffer.from(t.clientSeed, 'base64url')))
  const serverTrust: ServerTrust = createServerTrust({ pinnedFingerprint: fingerprintOf(Buffer.from(t.serverPublicKey, 'base64url')) })
  if (t.transport === 'ws') {
    // the server allows one handshake per connection: a new WebSocket each time
    const run: Handshake = async () => {
      const { socket } = await authenticateWebSocket({ url: t.url, keyPair, serverTrust, timeoutMs: 10_000 })
      socket.terminate()
    }
    return { run, close: () => undefined }
  }
  const fetch = await createNodeFetch({ maxSockets: concurrency, ...(t.transport === 'https' ? { caFile: t.ca } : {}) })
  const run: Handshake = async () => {
    await authenticate({ url: t.url, keyPair, serverTrust, fetch, retryAttempts: 0, timeoutMs: 10_000 })
  }
  return { run, close: () => undefined }
}

let reused = 0

const ECHO_BODY = JSON.stringify({ type: 'auth_request', pad: 'x'.repeat(350) })

function makeEchoClient(t: EchoTarget, concurrency: number): { run: Handshake; close: () => void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const post = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const req = http.request(
        { host: '127.0.0.1', port: t.port, method: 'POST', path: '/auth', agent, headers: { 'content-type': 'application/json', 'content-length': String(ECHO_BODY.length) } },
        (res) => {
          res.resume()
          res.on('end', () => resolve())
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(ECHO_BODY)
    })
  return {
    run: async () => {
      await post()
      await post()
    },
    close: () => agent.destroy(),
  }
}

function makeTlsClient(t: TlsTarget): { run: Handshake; close: () => void } {
  // One secure context (parsed key, cert, CA) for all connections, like an https.Agent would keep.
  const secureContext = tls.createSecureContext({
    ca: readFileSync(t.certs.ca),
    key: readFileSync(t.certs.clientKey),
    cert: readFileSync(t.certs.clientCert),
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
  })
  const run: Handshake = () =>
    new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: t.port, secureContext, servername: 'localhost', rejectUnauthorized: true })
      s.once('secureConnect', () => {
        if (!s.authorized) {
          s.destroy()
          reject(new Error(`server certificate not authorized: ${String(s.authorizationError)}`))
          return
        }
        if (s.isSessionReused()) reused++
        s.write('ping\n')
      })
      s.once('data', () => {
        s.end()
        resolve()
      })
      s.once('error', reject)
      s.once('close', () => reject(new Error('closed before the reply')))
    })
  return { run, close: () => undefined }
}

async function seq(m: Message): Promise<Record<string, unknown>> {
  const t = m.target as Target
  const n = Number(m.n)
  const warmup = Number(m.warmup ?? 100)
  const c = await makeClient(t, 1)
  for (let i = 0; i < warmup; i++) await c.run()
  const samples: number[] = new Array<number>(n)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const s = performance.now()
    await c.run()
    samples[i] = performance.now() - s
  }
  const elapsed = performance.now() - t0
  c.close()
  const sum = latencySummary(samples)
  return { ...sum, mean: elapsed / n, rate: (n * 1000) / elapsed, reused }
}

async function throughput(m: Message): Promise<Record<string, unknown>> {
  const t = m.target as Target
  const concurrency = Number(m.concurrency)
  const durationMs = Number(m.durationMs)
  const warmupMs = Number(m.warmupMs ?? 300)
  const c = await makeClient(t, concurrency)
  let count = 0
  let errors = 0
  let firstError: string | undefined
  let measuring = false
  let stop = false
  const loop = async (): Promise<void> => {
    while (!stop) {
      try {
        await c.run()
        if (measuring) count++
      } catch (err) {
        errors++
        firstError ??= err instanceof Error ? err.message : String(err)
        if (errors > 1000) stop = true
      }
    }
  }
  const loops = Array.from({ length: concurrency }, () => loop())
  await sleep(warmupMs)
  // the orchestrator brackets the measured window with server CPU readings: tell it when we start
  process.send?.({ type: 'window', id: m.id, phase: 'start' })
  measuring = true
  const t0 = performance.now()
  await sleep(durationMs)
  measuring = false
  const elapsed = performance.now() - t0
  process.send?.({ type: 'window', id: m.id, phase: 'end' })
  stop = true
  await Promise.all(loops)
  c.close()
  return { count, errors, firstError, elapsedMs: elapsed, rate: (count * 1000) / elapsed, reused }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

serve({ seq, throughput })
