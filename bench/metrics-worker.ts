/**
 * What metrics cost (issue 12: at most 2% on the handshake and per-request figures). Two auth
 * services built alike in one process, one without metrics and one reporting to a prom-client
 * registry (observer, instrumented nonce stores, process metrics, a scrape every second while it
 * runs). Runs alternate off/on (then on/off, so drift cancels); each round gives an on/off ratio,
 * and the figure is the median of those ratios. Each run is measured in wall time and in this
 * process's CPU time (process.cpuUsage): on a shared machine the CPU figure is the steadier one,
 * as it leaves out the time other processes hold the cores.
 * @module
 */
import { Allowlist } from '../src/allowlist/allowlist.js'
import { createClientHandshake, createServerTrust } from '../src/handshake/client-handshake.js'
import { generateKeyPair } from '../src/keys/key-pair.js'
import { createAuthMetrics } from '../src/metrics/auth-metrics.js'
import { InMemoryNonceStore } from '../src/nonce/memory-nonce-store.js'
import type { NonceStore } from '../src/nonce/nonce-store.js'
import { createRequestProof } from '../src/session/session-token.js'
import { createAuthService, type AuthService } from '../src/transport/auth-service.js'
import { keep, serve, statOf, type Stat } from './lib.js'

const AUDIENCE = 'http://127.0.0.1:8443'
const BODY = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'

interface Side {
  service: AuthService
  scrape?: () => Promise<unknown>
}

function store(): NonceStore {
  return new InMemoryNonceStore({ maxEntries: 10_000_000, sweepIntervalMs: 0 })
}

function sides(): { off: Side; on: Side; setup: ReturnType<typeof parties> } {
  const p = parties()
  const base = { keyPair: p.server, allowlist: p.serverAllowlist, audience: AUDIENCE }
  const off: Side = { service: createAuthService({ ...base, nonceStore: store(), proofNonceStore: store() }) }
  const metrics = createAuthMetrics()
  metrics.watchAllowlist(p.serverAllowlist)
  const on: Side = {
    service: createAuthService({
      ...base,
      nonceStore: metrics.instrumentNonceStore(store(), 'handshake'),
      proofNonceStore: metrics.instrumentNonceStore(store(), 'proof'),
      observer: metrics.observer,
    }),
    scrape: () => metrics.metrics(),
  }
  return { off, on, setup: p }
}

function parties() {
  const server = generateKeyPair()
  const client = generateKeyPair()
  const serverAllowlist = new Allowlist()
  serverAllowlist.add({ publicKeyRaw: client.publicKeyRaw, metadata: { role: 'trusted_client' } })
  const clientAllowlist = new Allowlist()
  clientAllowlist.add({ publicKeyRaw: server.publicKeyRaw, metadata: { role: 'mcp_server' } })
  return { server, client, serverAllowlist, clientAllowlist, trust: createServerTrust({ allowlist: clientAllowlist }) }
}

interface Spent {
  wall: number
  cpu: number
}

function cpuMicros(): number {
  const u = process.cpuUsage()
  return u.user + u.system
}

/** Server wall and CPU time (both service calls) of one handshake, in µs, added to `into`. */
async function oneHandshake(side: Side, p: ReturnType<typeof parties>, into: Spent): Promise<void> {
  const client = createClientHandshake({ keyPair: p.client, audience: AUDIENCE, serverTrust: p.trust })
  const m1 = client.start()
  let c0 = cpuMicros()
  let t0 = performance.now()
  const r2 = await side.service.handleMessage(m1)
  into.wall += (performance.now() - t0) * 1000
  into.cpu += cpuMicros() - c0
  const m3 = await client.handleChallenge(r2.body as never)
  c0 = cpuMicros()
  t0 = performance.now()
  const r4 = await side.service.handleMessage(m3)
  into.wall += (performance.now() - t0) * 1000
  into.cpu += cpuMicros() - c0
  if (r4.result === undefined) throw new Error(`handshake failed: ${JSON.stringify(r4.body)}`)
  keep(client.handleComplete(r4.result.message))
}

/** While `side` runs: a scrape every second, as a Prometheus would. */
async function withScrapes<T>(side: Side, fn: () => Promise<T>): Promise<T> {
  const timer = side.scrape === undefined ? undefined : setInterval(() => void side.scrape!(), 1000)
  try {
    return await fn()
  } finally {
    if (timer !== undefined) clearInterval(timer)
  }
}

async function handshakeRun(side: Side, p: ReturnType<typeof parties>, n: number): Promise<Spent> {
  return withScrapes(side, async () => {
    const spent = { wall: 0, cpu: 0 }
    for (let i = 0; i < n; i++) await oneHandshake(side, p, spent)
    return { wall: spent.wall / n, cpu: spent.cpu / n }
  })
}

async function requestRun(side: Side, session: { token: string; sessionKey: Uint8Array }, n: number): Promise<Spent> {
  const proofs = new Array<string>(n)
  for (let i = 0; i < n; i++) proofs[i] = createRequestProof({ sessionKey: session.sessionKey, method: 'POST', target: '/mcp', body: BODY })
  const authorization = `Bearer ${session.token}`
  return withScrapes(side, async () => {
    const c0 = cpuMicros()
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < n; i++) keep(await side.service.verifyRequest({ authorization, proof: proofs[i], method: 'POST', target: '/mcp', body: BODY }))
    return { wall: Number(process.hrtime.bigint() - t0) / 1000 / n, cpu: (cpuMicros() - c0) / n }
  })
}

async function sessionOn(side: Side, p: ReturnType<typeof parties>): Promise<{ token: string; sessionKey: Uint8Array }> {
  const client = createClientHandshake({ keyPair: p.client, audience: AUDIENCE, serverTrust: p.trust })
  const r2 = await side.service.handleMessage(client.start())
  const r4 = await side.service.handleMessage(await client.handleChallenge(r2.body as never))
  return client.handleComplete(r4.result!.message)
}

export interface Pair {
  off_us: Stat
  on_us: Stat
  ratio_on_off: Stat
  off_cpu_us: Stat
  on_cpu_us: Stat
  cpu_ratio_on_off: Stat
}

/** Alternating rounds: [off, on] then [on, off] …; returns per-side figures and the paired ratios. */
async function alternate(rounds: number, run: (side: Side) => Promise<Spent>, off: Side, on: Side): Promise<Pair> {
  await run(off)
  await run(on) // warm-up of both
  const offs: Spent[] = []
  const ons: Spent[] = []
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      offs.push(await run(off))
      ons.push(await run(on))
    } else {
      ons.push(await run(on))
      offs.push(await run(off))
    }
  }
  return {
    off_us: statOf(offs.map((x) => x.wall)),
    on_us: statOf(ons.map((x) => x.wall)),
    ratio_on_off: statOf(ons.map((x, i) => x.wall / offs[i]!.wall)),
    off_cpu_us: statOf(offs.map((x) => x.cpu)),
    on_cpu_us: statOf(ons.map((x) => x.cpu)),
    cpu_ratio_on_off: statOf(ons.map((x, i) => x.cpu / offs[i]!.cpu)),
  }
}

/**
 * The work metrics add to one request check, timed alone (steadier under load than the paired
 * end-to-end ratio): a bare nonce insert against a wrapped one plus the observer calls, in short
 * alternating chunks; the figure is the median of the per-chunk differences.
 */
function addedPerRequestNs(chunks: number): { added_ns: Stat; bare_insert_ns: Stat } {
  const metrics = createAuthMetrics({ processMetrics: false })
  const observer = metrics.observer
  const session = { sessionId: 'bench-session', clientFingerprint: 'f'.repeat(64), issuedAt: 0, expiresAt: Date.now() + 3_600_000, entry: {} as never, token: '' }
  const exp = Date.now() + 60_000
  const size = 10_000
  const keysFor = (c: number, side: string): string[] => Array.from({ length: size }, (_, i) => `${side}${c}:${i}:AAAAAAAAAAAAAAAAAAAAAA`)
  // A fresh store of each kind per chunk: both maps grow (and rehash) alike.
  let raw = store()
  let wrapped = metrics.instrumentNonceStore(store(), 'proof')
  const bareRun = (keys: string[]): number => {
    raw = store()
    const t0 = process.hrtime.bigint()
    for (const k of keys) keep(raw.checkAndInsert(k, exp))
    return Number(process.hrtime.bigint() - t0) / size
  }
  const onRun = (keys: string[]): number => {
    wrapped = metrics.instrumentNonceStore(store(), 'proof')
    const t0 = process.hrtime.bigint()
    for (const k of keys) {
      const sampled = observer.sampleRequest
      keep(wrapped.checkAndInsert(k, exp))
      observer.request(undefined, sampled ? 0.000005 : -1, session)
    }
    return Number(process.hrtime.bigint() - t0) / size
  }
  bareRun(keysFor(-1, 'b'))
  onRun(keysFor(-1, 'o'))
  const added: number[] = []
  const bare: number[] = []
  for (let c = 0; c < chunks; c++) {
    const kb = keysFor(c, 'b')
    const ko = keysFor(c, 'o')
    let b: number
    let o: number
    if (c % 2 === 0) {
      b = bareRun(kb)
      o = onRun(ko)
    } else {
      o = onRun(ko)
      b = bareRun(kb)
    }
    bare.push(b)
    added.push(o - b)
  }
  return { added_ns: statOf(added), bare_insert_ns: statOf(bare) }
}

async function metricsCost(quick: boolean): Promise<Record<string, unknown>> {
  const { off, on, setup } = sides()
  const rounds = quick ? 6 : 40
  const handshakes = 100
  const requests = quick ? 5_000 : 20_000
  const handshake = await alternate(rounds, (side) => handshakeRun(side, setup, handshakes), off, on)
  const offSession = await sessionOn(off, setup)
  const onSession = await sessionOn(on, setup)
  const request = await alternate(rounds, (side) => requestRun(side, side === off ? offSession : onSession, requests), off, on)
  const added = addedPerRequestNs(quick ? 20 : 100)
  return { handshake_server: handshake, request_verify: request, added_per_request: added, rounds, handshakes_per_run: handshakes, requests_per_run: requests }
}

serve({
  metrics: async (m) => ({ result: await metricsCost(m.quick === true) }),
})
