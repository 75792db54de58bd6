/**
 * What metrics cost (issue 12: at most 2% on the handshake and per-request figures). Two auth
 * services built alike in one process, one without metrics and one reporting to a prom-client
 * registry (observer, instrumented nonce stores, process metrics), plus a control: a second
 * service without metrics. Within each round the three take turns at a fine grain — one
 * handshake, or a chunk of 100 request checks, at a time, in the order off, on, control, control,
 * on, off … — so all see the same moments of a shared machine's load; each round gives on/off
 * and control/off ratios of the summed times, and the figures are medians over rounds. The
 * control ratio is the noise floor: an on/off ratio is only as exact as control/off is close to 1. Times
 * are wall time and this process's CPU time (process.cpuUsage). What a scrape costs is measured
 * apart (it happens once per scrape interval, not per request).
 * @module
 */
import { Allowlist } from '../src/allowlist/allowlist.js'
import { createClientHandshake, createServerTrust } from '../src/handshake/client-handshake.js'
import { generateKeyPair } from '../src/keys/key-pair.js'
import { createAuthMetrics } from '../src/metrics/auth-metrics.js'
import { InMemoryNonceStore } from '../src/nonce/memory-nonce-store.js'
import type { NonceStore } from '../src/nonce/nonce-store.js'
import { createRequestProof, type ProofSession } from '../src/session/session-token.js'
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

function sides(): { off: Side; on: Side; control: Side; setup: ReturnType<typeof parties> } {
  const p = parties()
  const base = { keyPair: p.server, allowlist: p.serverAllowlist, audience: AUDIENCE }
  const off: Side = { service: createAuthService({ ...base, nonceStore: store() }) }
  const control: Side = { service: createAuthService({ ...base, nonceStore: store() }) }
  const metrics = createAuthMetrics()
  metrics.watchAllowlist(p.serverAllowlist)
  const on: Side = {
    service: createAuthService({
      ...base,
      nonceStore: metrics.instrumentNonceStore(store(), 'handshake'),
      observer: metrics.observer,
    }),
    scrape: () => metrics.metrics(),
  }
  return { off, on, control, setup: p }
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

export interface Pair {
  off_us: Stat
  on_us: Stat
  ratio_on_off: Stat
  off_cpu_us: Stat
  on_cpu_us: Stat
  cpu_ratio_on_off: Stat
  /** The same ratios for the control (no metrics either): the noise floor. */
  control_ratio: Stat
  control_cpu_ratio: Stat
}

type Trio = [Spent, Spent, Spent]
/** Turn order (0 off, 1 on, 2 control): nobody always goes first or follows the same side. */
const TURNS = [0, 1, 2, 2, 1, 0] as const

function pairOf(rounds: Trio[]): Pair {
  return {
    off_us: statOf(rounds.map((r) => r[0].wall)),
    on_us: statOf(rounds.map((r) => r[1].wall)),
    ratio_on_off: statOf(rounds.map((r) => r[1].wall / r[0].wall)),
    off_cpu_us: statOf(rounds.map((r) => r[0].cpu)),
    on_cpu_us: statOf(rounds.map((r) => r[1].cpu)),
    cpu_ratio_on_off: statOf(rounds.map((r) => r[1].cpu / r[0].cpu)),
    control_ratio: statOf(rounds.map((r) => r[2].wall / r[0].wall)),
    control_cpu_ratio: statOf(rounds.map((r) => r[2].cpu / r[0].cpu)),
  }
}

/** One round: `n` handshakes per side, taking turns one by one; µs per handshake per side. */
async function handshakeRound(trio: readonly Side[], p: ReturnType<typeof parties>, n: number): Promise<Trio> {
  const spent: Trio = [{ wall: 0, cpu: 0 }, { wall: 0, cpu: 0 }, { wall: 0, cpu: 0 }]
  for (let i = 0; i < 3 * n; i++) {
    const k = TURNS[i % TURNS.length]!
    await oneHandshake(trio[k]!, p, spent[k])
  }
  return spent.map((x) => ({ wall: x.wall / n, cpu: x.cpu / n })) as Trio
}

const CHUNK = 100

/** One round: `chunks` chunks of 100 request checks per side, taking turns; µs per check per side. */
async function requestRound(trio: readonly Side[], sessions: readonly ProofSession[], chunks: number): Promise<Trio> {
  const proofs = sessions.map((sess) => Array.from({ length: chunks * CHUNK }, () => createRequestProof({ session: sess, method: 'POST', target: '/mcp', body: BODY })))
  const spent: Trio = [{ wall: 0, cpu: 0 }, { wall: 0, cpu: 0 }, { wall: 0, cpu: 0 }]
  const used = [0, 0, 0]
  for (let i = 0; i < 3 * chunks; i++) {
    const k = TURNS[i % TURNS.length]!
    const service = trio[k]!.service
    const list = proofs[k]!
    const authorization = `Bearer ${sessions[k]!.token}`
    let next = used[k]!
    const c0 = cpuMicros()
    const t0 = process.hrtime.bigint()
    for (let j = 0; j < CHUNK; j++) keep(await service.verifyRequest({ authorization, proof: list[next++], method: 'POST', target: '/mcp', body: BODY }))
    spent[k].wall += Number(process.hrtime.bigint() - t0) / 1000
    spent[k].cpu += cpuMicros() - c0
    used[k] = next
  }
  return spent.map((x) => ({ wall: x.wall / (chunks * CHUNK), cpu: x.cpu / (chunks * CHUNK) })) as Trio
}

async function sessionOn(side: Side, p: ReturnType<typeof parties>): Promise<ProofSession> {
  const client = createClientHandshake({ keyPair: p.client, audience: AUDIENCE, serverTrust: p.trust })
  const r2 = await side.service.handleMessage(client.start())
  const r4 = await side.service.handleMessage(await client.handleChallenge(r2.body as never))
  return client.handleComplete(r4.result!.message)
}

/** CPU µs of one scrape (the whole exposition, process metrics included). */
async function scrapeCost(side: Side, times: number): Promise<Stat> {
  const runs: number[] = []
  await side.scrape!()
  for (let i = 0; i < times; i++) {
    const c0 = cpuMicros()
    keep(await side.scrape!())
    runs.push(cpuMicros() - c0)
  }
  return statOf(runs)
}

/**
 * The work metrics add to one request check, timed alone (steadier under load than the paired
 * end-to-end ratio): a bare nonce insert against a wrapped one plus the observer calls, in short
 * alternating chunks; the figure is the median of the per-chunk differences.
 */
function addedPerRequestNs(chunks: number): { added_ns: Stat; bare_insert_ns: Stat } {
  const metrics = createAuthMetrics({ processMetrics: false })
  const observer = metrics.observer
  const session = { sessionId: 'bench-session', clientFingerprint: 'f'.repeat(64), issuedAt: 0, expiresAt: Date.now() + 3_600_000, entry: {} as never, token: '', audience: 'https://bench.example' }
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
  const { off, on, control, setup } = sides()
  const trio = [off, on, control]
  const rounds = quick ? 6 : 20
  const handshakes = quick ? 60 : 200
  const chunks = quick ? 30 : 150
  await handshakeRound(trio, setup, 30) // warm-up
  const hs: Trio[] = []
  for (let r = 0; r < rounds; r++) hs.push(await handshakeRound(trio, setup, handshakes))
  const sessions = [await sessionOn(off, setup), await sessionOn(on, setup), await sessionOn(control, setup)]
  await requestRound(trio, sessions, 15) // warm-up
  const rq: Trio[] = []
  for (let r = 0; r < rounds; r++) rq.push(await requestRound(trio, sessions, chunks))
  const added = addedPerRequestNs(quick ? 20 : 100)
  return {
    handshake_server: pairOf(hs),
    request_verify: pairOf(rq),
    added_per_request: added,
    scrape_cpu_us: await scrapeCost(on, quick ? 5 : 20),
    rounds,
    handshakes_per_side_per_round: handshakes,
    requests_per_side_per_round: chunks * 100,
  }
}

serve({
  metrics: async (m) => ({ result: await metricsCost(m.quick === true) }),
})
