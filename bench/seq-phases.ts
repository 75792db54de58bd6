/**
 * Where the time of one sequential HTTP handshake goes, seen from the client: the server runs in
 * its own process (bench/server-worker.ts); this process times each client step and each round
 * trip and prints medians (µs).
 *
 *   node --import tsx bench/seq-phases.ts [--n 2000]
 * @module
 */
import { createClientHandshake, createServerTrust } from '../src/handshake/client-handshake.js'
import { fingerprintOf, generateKeyPair, privateKeySeed } from '../src/keys/key-pair.js'
import { createNodeFetch, NODE_POST, type NodePost } from '../src/transport/tls.js'
import { authenticate } from '../src/transport/http-client.js'
import { table, Worker } from './lib.js'

const n = Number(process.argv[process.argv.indexOf('--n') + 1] || 2000)
const server = generateKeyPair()
const client = generateKeyPair()
const w = new Worker('./server-worker.ts')
await w.ready()
const r = await w.request('start', { mode: 'http', serverSeed: privateKeySeed(server.privateKey).toString('base64url'), clientPublicKey: client.publicKeyRaw.toString('base64url'), certs: { ca: '', serverKey: '', serverCert: '' } })
const url = `http://127.0.0.1:${Number(r.port)}/auth`
const we = new Worker('./server-worker.ts')
await we.ready()
const echoUrl = `http://127.0.0.1:${Number((await we.request('start', { mode: 'echo' })).port)}/auth`
const fetch = await createNodeFetch({ maxSockets: 1 })
const post = (fetch as unknown as Record<symbol, NodePost>)[NODE_POST]!
const serverTrust = createServerTrust({ pinnedFingerprint: fingerprintOf(server.publicKeyRaw) })
const audience = new URL(url).origin

const phases = ['start', 'stringify1', 'rtt1', 'parse2', 'handleChallenge', 'stringify3', 'rtt2', 'parse4', 'handleComplete', 'total', 'authenticate()', 'echo rtt (m1 body)', 'echo rtt (m3 body)'] as const
const samples: Record<string, number[]> = Object.fromEntries(phases.map((p) => [p, []]))
for (let i = 0; i < n + 200; i++) {
  // lap() records the time since the previous lap, in the order of `phases` (total is derived).
  const laps: number[] = []
  let last = performance.now()
  const lap = (): void => {
    const now = performance.now()
    laps.push(now - last)
    last = now
  }
  const c = createClientHandshake({ keyPair: client, audience, serverTrust })
  const m1 = c.start()
  lap()
  const b1 = JSON.stringify(m1)
  lap()
  const x2 = await post(url, b1, 10_000, 1 << 20)
  lap()
  const m2 = JSON.parse(x2.text) as unknown
  lap()
  const m3 = await c.handleChallenge(m2)
  lap()
  const b3 = JSON.stringify(m3)
  lap()
  const x4 = await post(url, b3, 10_000, 1 << 20)
  lap()
  const m4 = JSON.parse(x4.text) as unknown
  lap()
  c.handleComplete(m4)
  lap()
  const handshake = laps.reduce((a, b) => a + b, 0)
  await authenticate({ url, keyPair: client, serverTrust, fetch, retryAttempts: 0 })
  lap()
  await post(echoUrl, b1, 10_000, 1 << 20)
  lap()
  await post(echoUrl, b3, 10_000, 1 << 20)
  lap()
  if (i < 200) continue
  const d = [...laps.slice(0, 9), handshake, ...laps.slice(9)]
  phases.forEach((p, k) => samples[p]!.push(d[k]! * 1000))
}
const med = (a: number[]): number => a.sort((x, y) => x - y)[a.length >> 1]!
const p90 = (a: number[]): number => a.sort((x, y) => x - y)[Math.floor(a.length * 0.9)]!
console.log(table(`One sequential HTTP handshake, client view (µs, n=${n})`, ['phase', 'p50', 'p90'], phases.map((p) => [p, med(samples[p]!).toFixed(1), p90(samples[p]!).toFixed(1)])))
const st = await w.request('timing', {})
console.log('server wall time per message, request event → reply sent (µs median):', JSON.stringify(st))
await w.stop()
await we.stop()
