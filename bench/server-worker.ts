/**
 * The server side of the network benchmarks, in its own process. Commands over IPC:
 *   start {mode: 'http'|'https'|'ws'|'tls'|'echo'|'cryptofloor', ...}  → {port}
 *   cpu                                          → {cpuUs, handshakes} (this process's own accounting)
 *   crypto {iterations}                          → µs of the handshake's core crypto, measured here
 *
 * Ours: the project's createAuthService behind its own HTTP(S)/WebSocket server, with an
 * in-memory allowlist and nonce store. The peer: a node:tls server requiring client certificates
 * (TLS 1.3 only, no session tickets) that answers one tiny request per connection. The floors: a
 * bare echo of two round trips (`echo`), and the protocol's crypto over those two round trips with
 * nothing else (`cryptofloor`, bench/handshake-floor.ts).
 * @module
 */
import { constants as cryptoConstants, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, sign, verify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as tls from 'node:tls'
import { generateEphemeral, x25519PublicFromRaw } from '../src/handshake/common.js'
import { Allowlist } from '../src/allowlist/allowlist.js'
import { keyPairFromPrivateKey, privateKeyFromSeed } from '../src/keys/key-pair.js'
import { InMemoryNonceStore } from '../src/nonce/memory-nonce-store.js'
import { createAuthService } from '../src/transport/auth-service.js'
import { createAuthHttpServer } from '../src/transport/http-server.js'
import { createAuthWebSocketServer } from '../src/transport/ws-server.js'
import { startHandshakeFloor } from './handshake-floor.js'
import { cpuMicros, serve, timeSync, type Message } from './lib.js'

let handshakes = 0

interface StartArgs {
  mode: 'http' | 'https' | 'ws' | 'tls' | 'echo' | 'cryptofloor'
  serverSeed: string
  clientPublicKey: string
  certs: { ca: string; serverKey: string; serverCert: string }
}

async function start(m: Message): Promise<Record<string, unknown>> {
  const a = m as unknown as StartArgs
  if (a.mode === 'tls') return { port: await startTls(a) }
  if (a.mode === 'echo') return { port: await startEcho() }
  if (a.mode === 'cryptofloor') return { port: (await startHandshakeFloor({ serverSeed: Buffer.from(a.serverSeed, 'base64url'), onHandshake: () => handshakes++ })).port }
  const keyPair = keyPairFromPrivateKey(privateKeyFromSeed(Buffer.from(a.serverSeed, 'base64url')))
  const allowlist = new Allowlist()
  allowlist.add({ publicKeyRaw: Buffer.from(a.clientPublicKey, 'base64url'), metadata: { role: 'trusted_client' } })
  const nonceStore = new InMemoryNonceStore({ maxEntries: 1_000_000 })
  const service = createAuthService({ keyPair, allowlist, nonceStore })
  const server = createAuthHttpServer({
    service,
    maxConnections: 1000,
    onReply: (reply, req) => {
      if (reply.result !== undefined) handshakes++
      const started = (req as { benchStart?: number }).benchStart
      const list = serverTimes[reply.body.type]
      if (started !== undefined && list !== undefined && list.length < 100_000) list.push(performance.now() - started)
    },
    ...(a.mode === 'https' ? { tls: { key: readFileSync(a.certs.serverKey), cert: readFileSync(a.certs.serverCert) } } : {}),
  })
  if (a.mode === 'ws') {
    // one handshake per connection: the server hands the socket to the application after message 4
    const wss = createAuthWebSocketServer({
      service,
      maxConnections: 1000,
      onAuthenticated: (ws) => {
        handshakes++
        ws.on('error', () => ws.terminate())
      },
    })
    wss.attach(server.server)
  }
  // Wall time inside this process per message: from the request event to the reply handed to
  // the socket, by message type (bench/seq-phases.ts reads it).
  server.server.prependListener('request', (req: http.IncomingMessage) => {
    ;(req as { benchStart?: number }).benchStart = performance.now()
  })
  const addr = await server.listen()
  return { port: addr.port }
}

const serverTimes: Record<string, number[]> = { auth_challenge: [], auth_complete: [] }
function timing(): Record<string, unknown> {
  const med = (a: number[]): number => (a.length === 0 ? 0 : [...a].sort((x, y) => x - y)[a.length >> 1]!)
  const out = Object.fromEntries(Object.entries(serverTimes).map(([k, v]) => [k, { n: v.length, medianUs: med(v) * 1000 }]))
  for (const v of Object.values(serverTimes)) v.length = 0
  return out
}

/** The network floor: a bare node:http keep-alive server echoing the body (no crypto, no parsing). */
async function startEcho(): Promise<number> {
  let requests = 0
  const server = http.createServer({ keepAliveTimeout: 5_000 }, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) })
      res.end(body)
      // two requests = one "handshake" (the two round trips of ours)
      if (++requests % 2 === 0) handshakes++
    })
  })
  server.maxConnections = 1000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

async function startTls(a: StartArgs): Promise<number> {
  const server = tls.createServer(
    {
      key: readFileSync(a.certs.serverKey),
      cert: readFileSync(a.certs.serverCert),
      ca: readFileSync(a.certs.ca),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      // full handshakes only: no tickets, no session cache
      secureOptions: cryptoConstants.SSL_OP_NO_TICKET,
      sessionTimeout: 0,
    },
    (socket) => {
      handshakes++
      socket.on('data', () => socket.end('pong\n'))
      socket.on('error', () => socket.destroy())
    },
  )
  server.on('tlsClientError', () => undefined)
  server.maxConnections = 1000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

function crypto(m: Message): Record<string, unknown> {
  const n = typeof m.iterations === 'number' ? m.iterations : 500
  const msg = randomBytes(400)
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const sig = sign(null, msg, privateKey)
  const a = generateEphemeral()
  const bPub = x25519PublicFromRaw(generateEphemeral().publicRaw)
  const ikm = randomBytes(32)
  const salt = randomBytes(32)
  const info = Buffer.from('mcp-pki/2 session-keys')
  const t = (fn: () => unknown): number => timeSync(fn, n, 1, 50).median
  const signUs = t(() => sign(null, msg, privateKey))
  const verifyUs = t(() => verify(null, msg, publicKey, sig))
  const keygenUs = t(() => generateKeyPairSync('x25519'))
  const dhUs = t(() => diffieHellman({ privateKey: a.privateKey, publicKey: bPub }))
  const hkdfUs = t(() => hkdfSync('sha256', ikm, salt, info, 64))
  return {
    // mcp-pki/2: one signature (message 2), one verification (message 3); message 4 is a MAC
    coreUs: signUs + verifyUs + keygenUs + dhUs + hkdfUs,
    ed25519Us: signUs + verifyUs,
    parts: { sign: signUs, verify: verifyUs, x25519_keygen: keygenUs, x25519_dh: dhUs, hkdf: hkdfUs },
  }
}

serve({
  start,
  cpu: () => ({ cpuUs: cpuMicros(), handshakes }),
  timing,
  crypto,
})
