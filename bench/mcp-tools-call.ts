/**
 * The cost of authentication per MCP `tools/call` over HTTP, once a session exists, side by side
 * with the plain SDK server and with the same server behind a bearer JWT verified per request.
 *
 *   node --import tsx bench/mcp-tools-call.ts [--quick] [--calls N] [--rounds R] [--warmup N]
 *     [--concurrent-calls N] [--concurrent-rounds R] [--json]
 *   node --cpu-prof --import tsx bench/mcp-tools-call.ts --only-kind plain|jwt|auth --calls N
 *     (one peer alone, for profiles; BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR" profiles the server)
 *
 * One server process (a child of this one) serves the same SDK 1.x McpServer three times:
 * `/plain/mcp` with no authentication; `/jwt/mcp` behind an EdDSA JWT verified with `jose` on every
 * request (signature, `iss`, `aud`, `exp`), as an OAuth resource server does; and `/mcp` behind
 * createMcpAuth (token + request proof per request, in-memory nonce store). This process runs
 * three SDK clients over StreamableHTTPClientTransport: plain, with the JWT in `requestInit`
 * headers, and with createAuthFetch, each with its MCP session and (for the last) its mcp-pki
 * session already open. Each round times N sequential `tools/call` on each after a warm-up, in
 * blocks of 10 calls whose order rotates, so load changes on the machine hit all three alike; the
 * figures are medians over rounds of the per-round median call time, and the ratios medians of the
 * per-round ratios. Then 10 clients of each kind call at once, groups in rotating order.
 * CPU per call of both processes (`process.cpuUsage`) is reported next to wall time, as medians:
 * it moves far less than wall time when other work shares the machine.
 * @module
 */
import type { ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js'
import { exportJWK, generateKeyPair as generateJwtKeyPair, importJWK, jwtVerify, SignJWT, type JWK } from 'jose'
import { z } from 'zod'
import { Allowlist } from '../src/allowlist/allowlist.js'
import { createServerTrust } from '../src/handshake/client-handshake.js'
import { generateKeyPair, type Ed25519KeyPair } from '../src/keys/key-pair.js'
import { createAuthFetch, type AuthFetch } from '../src/mcp/client.js'
import type { McpAuthInfo, McpRequest } from '../src/mcp/server.js'
import { InMemoryNonceStore } from '../src/nonce/memory-nonce-store.js'
import { createAuthService } from '../src/transport/auth-service.js'
import { benchMcpAuth, forkBenchServer, serverNodeArgs } from './mcp-bench-server.js'
import { createRequestProof } from '../src/session/session-token.js'

// ---------- server (child process) ----------

function buildServer(): McpServer {
  const server = new McpServer({ name: 'bench', version: '1.0.0' })
  server.registerTool('echo', { description: 'echo', inputSchema: { text: z.string() } }, ({ text }) => ({ content: [{ type: 'text', text }] }))
  return server
}

/** When the server saw the request (performance.now()), set by the server's first listener. */
const ARRIVED = Symbol('arrived')
/** Server wall time from the request event to the SDK handler, µs, by route (+proof: see serve). */
const toHandler = new Map<string, number[]>()

export function statefulHandler(): (req: McpRequest, res: ServerResponse) => Promise<void> {
  const transports = new Map<string, StreamableHTTPServerTransport>()
  return async (req, res) => {
    const arrived = (req as unknown as Record<symbol, [number, string] | undefined>)[ARRIVED]
    if (arrived !== undefined) toHandler.get(arrived[1])?.push((performance.now() - arrived[0]) * 1000)
    const sid = req.headers['mcp-session-id']
    let t = typeof sid === 'string' ? transports.get(sid) : undefined
    if (t === undefined) {
      if (!isInitializeRequest(req.body)) {
        res.writeHead(400).end()
        return
      }
      const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({ sessionIdGenerator: () => randomUUID(), onsessioninitialized: (id) => void transports.set(id, created) })
      await buildServer().connect(created)
      t = created
    }
    await t.handleRequest(req, res, req.body)
  }
}

export function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      try {
        resolve(text === '' ? undefined : JSON.parse(text))
      } catch (err) {
        reject(err as Error)
      }
    })
    req.on('error', reject)
  })
}

const JWT_ISSUER = 'https://issuer.bench.invalid'
const JWT_AUDIENCE = 'https://mcp.bench.invalid'

/**
 * The JWT peer: what an OAuth resource server does per request (the SDK's `requireBearerAuth`
 * with a local verifier): the bearer JWT's EdDSA signature, issuer, audience and expiry checked
 * with `jose`, then the body read and parsed, `req.auth` set and the SDK handler called.
 */
function jwtProtect(key: Awaited<ReturnType<typeof importJWK>>, handler: (req: McpRequest, res: ServerResponse) => Promise<void>): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const m = /^Bearer ([A-Za-z0-9._-]+)$/.exec(req.headers.authorization ?? '')
    if (m === null) {
      res.writeHead(401, { 'www-authenticate': 'Bearer' }).end()
      return
    }
    const token = m[1]!
    jwtVerify(token, key, { algorithms: ['EdDSA'], issuer: JWT_ISSUER, audience: JWT_AUDIENCE })
      .then(async ({ payload }) => {
        const body = await readJson(req)
        const auth: McpAuthInfo = { token, clientId: String(payload.sub), scopes: String(payload.scope ?? '').split(' '), ...(payload.exp === undefined ? {} : { expiresAt: payload.exp }) }
        await handler(Object.assign(req as McpRequest, { body, auth }), res)
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end()
      })
  }
}

async function serve(): Promise<void> {
  const mcpAuth = benchMcpAuth()
  const plain = statefulHandler()
  const authed = mcpAuth.protect(statefulHandler())
  const jwt = jwtProtect(await importJWK(JSON.parse(process.env.BENCH_JWT_PUBLIC_JWK!) as JWK, 'EdDSA'), statefulHandler())
  const http = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path === '/auth') mcpAuth.authHandler(req, res)
    else if (path === '/mcp') authed(req, res)
    else if (path === '/jwt/mcp') jwt(req, res)
    else if (path === '/plain/mcp') {
      readJson(req)
        .then((body) => plain(Object.assign(req, { body }), res))
        .catch(() => res.writeHead(400).end())
    } else res.writeHead(404).end()
  })
  // Wall time per request inside this process, request event → response finished, by route.
  const wall: Record<string, number[]> = { '/mcp': [], '/plain/mcp': [], '/jwt/mcp': [] }
  // CPU per route: everything this process does from one MCP request's arrival to the next one's
  // is charged to the first (the client runs one kind at a time: blocks, then groups), per phase.
  const cpu = new Map<string, { us: number; n: number }>()
  const perRequest = new Map<string, number[]>()
  // Wall µs request event → response finished, by route (+proof), outside the `off` phase.
  const whole = new Map<string, number[]>()
  let phase = 'off'
  let lastKey: string | undefined
  let lastCpu = process.cpuUsage()
  const charge = (key: string | undefined): void => {
    const u = process.cpuUsage()
    const spent = u.user + u.system - lastCpu.user - lastCpu.system
    lastCpu = u
    if (lastKey !== undefined) {
      const c = cpu.get(lastKey) ?? { us: 0, n: 0 }
      c.us += spent
      cpu.set(lastKey, c)
      // Per request, for the median (sequential phases only: there one request is in flight).
      if (lastKey.startsWith('seq ')) (perRequest.get(lastKey) ?? perRequest.set(lastKey, []).get(lastKey)!).push(spent)
    }
    lastKey = key
    if (key !== undefined) cpu.get(key)!.n++
  }
  http.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const t0 = performance.now()
    const route = (req.url ?? '').split('?')[0]!
    // bench/tools-call-split.ts names its clients in `x-split` (all alike, so the same bytes).
    const split = req.headers['x-split']
    const kind = typeof split === 'string' ? `${route}#${split}` : route
    res.once('finish', () => {
      wall[route]?.push((performance.now() - t0) * 1000)
      whole.get(kind)?.push((performance.now() - t0) * 1000)
    })
    if (phase !== 'off' && (route in wall || typeof split === 'string')) {
      ;(req as unknown as Record<symbol, [number, string]>)[ARRIVED] = [t0, kind]
      if (!whole.has(kind)) {
        whole.set(kind, [])
        toHandler.set(kind, [])
      }
      const key = `${phase} ${kind}`
      if (!cpu.has(key)) cpu.set(key, { us: 0, n: 0 })
      charge(key)
    }
  })
  process.on('message', (m: { type?: string; phase?: string }) => {
    if (m.type === 'phase') {
      charge(undefined)
      phase = m.phase ?? 'off'
      process.send!({ type: 'phase' })
      return
    }
    if (m.type === 'cpu') {
      charge(undefined)
      process.send!({ type: 'cpu', cpu: Object.fromEntries([...cpu].map(([k, v]) => [k, v.n === 0 ? 0 : v.us / v.n])), median: Object.fromEntries([...perRequest].map(([k, v]) => [k, median(v)])) })
      return
    }
    const med = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1] ?? 0
    if (m.type === 'split') {
      process.send!({ type: 'split', split: Object.fromEntries([...whole.keys()].map((k) => [k, { to_handler_us: med(toHandler.get(k)!), whole_us: med(whole.get(k)!) }])) })
      return
    }
    if (m.type !== 'wall') return
    process.send!({ type: 'wall', auth: med(wall['/mcp']!), plain: med(wall['/plain/mcp']!), jwt: med(wall['/jwt/mcp']!), n: wall['/mcp']!.length })
  })
  http.keepAliveTimeout = 60_000
  http.listen(0, '127.0.0.1', () => process.send!({ port: (http.address() as AddressInfo).port }))
  process.on('disconnect', () => process.exit(0))
}

// ---------- client (this process) ----------

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** This process's CPU (user + system, µs) per kind and phase, with the calls it covers. */
export const clientCpu = new Map<string, { us: number; n: number; each: number[] }>()
function chargeClient(key: string, since: NodeJS.CpuUsage, calls: number, each?: number[]): void {
  const u = process.cpuUsage(since)
  const c = clientCpu.get(key) ?? { us: 0, n: 0, each: [] }
  c.us += u.user + u.system
  c.n += calls
  if (each !== undefined) c.each.push(...each)
  clientCpu.set(key, c)
}

export async function timeCalls(client: Client, n: number, into?: number[], cpuKey?: string): Promise<number> {
  const times: number[] = into ?? []
  const c0 = process.cpuUsage()
  const each: number[] = []
  let c = c0
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await client.callTool({ name: 'echo', arguments: { text: `call ${i}` } })
    times.push(performance.now() - t0)
    // CPU of each call too, for a median that one garbage collection does not move.
    const u = process.cpuUsage()
    each.push(u.user + u.system - c.user - c.system)
    c = u
  }
  if (cpuKey !== undefined) chargeClient(cpuKey, c0, n, each)
  return median(times)
}

/**
 * The authentication work alone, in this process: a client request proof plus the server's full
 * check (token, allowlist, proof MAC, nonce) for a tools/call body, per call, hot.
 */
async function authWorkUs(n: number): Promise<number> {
  const server = generateKeyPair()
  const client = generateKeyPair()
  const allowlist = new Allowlist()
  allowlist.add({ publicKeyRaw: client.publicKeyRaw, metadata: { role: 'bench' } })
  const trusted = new Allowlist()
  trusted.add({ publicKeyRaw: server.publicKeyRaw })
  const service = createAuthService({ keyPair: server, allowlist, nonceStore: new InMemoryNonceStore({ maxEntries: 1_000_000 }) })
  const handshakeFetch = async (_url: string, init: { body: string }) => {
    const r = await service.handleMessage(init.body)
    return new Response(JSON.stringify(r.body), { status: r.status })
  }
  const authFetch = createAuthFetch({ url: 'http://bench.invalid/mcp', keyPair: client, serverTrust: createServerTrust({ allowlist: trusted }), handshakeFetch: handshakeFetch as never })
  const s = await authFetch.session()
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo', arguments: { text: 'call 1' } } })
  const run = async (k: number): Promise<number> => {
    const t0 = performance.now()
    for (let i = 0; i < k; i++) {
      const proof = createRequestProof({ session: s, method: 'POST', target: '/mcp', body })
      await service.verifyRequest({ authorization: `Bearer ${s.token}`, proof, method: 'POST', target: '/mcp', body })
    }
    return ((performance.now() - t0) * 1000) / k
  }
  await run(n)
  return median([await run(n), await run(n), await run(n)])
}

const KINDS = ['plain', 'jwt', 'auth'] as const
type Kind = (typeof KINDS)[number]
type PerKind<T> = Record<Kind, T>

/** The order of the three kinds for block `i`: rotated, and reversed on odd rounds. */
function orderOf(i: number, reverse: boolean): Kind[] {
  const rotated = KINDS.map((_, k) => KINDS[(i + k) % KINDS.length]!)
  return reverse ? rotated.reverse() : rotated
}

/** One round: the three clients in small blocks of rotating order, so load changes on the machine hit all alike. */
async function round(clients: PerKind<Client>, calls: number, reverse: boolean): Promise<PerKind<number>> {
  const block = 10
  const times: PerKind<number[]> = { plain: [], jwt: [], auth: [] }
  for (let done = 0, i = 0; done < calls; done += block, i++) {
    const k = Math.min(block, calls - done)
    for (const kind of orderOf(i, reverse)) await timeCalls(clients[kind], k, times[kind], `seq ${kind}`)
  }
  return { plain: median(times.plain), jwt: median(times.jwt), auth: median(times.auth) }
}

const ROUTE: PerKind<string> = { plain: '/plain/mcp', jwt: '/jwt/mcp', auth: '/mcp' }

/** The server's CPU µs per call by `phase route`. */
export function serverCpuPerCall(child: ChildProcess): Promise<Record<string, number> & { median: Record<string, number> }> {
  return new Promise((resolve) => {
    const on = (m: { type?: string; cpu?: Record<string, number>; median?: Record<string, number> }): void => {
      if (m.type !== 'cpu') return
      child.off('message', on)
      resolve(Object.assign(m.cpu!, { median: m.median! }))
    }
    child.on('message', on)
    child.send({ type: 'cpu' })
  })
}

/** Tells the server which phase its CPU is charged to (`seq`, `conc` or `off`), and waits for it. */
export function setPhase(child: ChildProcess, phase: string): Promise<void> {
  return new Promise((resolve) => {
    const on = (m: { type?: string }): void => {
      if (m.type !== 'phase') return
      child.off('message', on)
      resolve()
    }
    child.on('message', on)
    child.send({ type: 'phase', phase })
  })
}

interface Peers {
  origin: string
  clientKey: Ed25519KeyPair
  trusted: Allowlist
  jwt: string
}

/** Three SDK clients, each with its MCP session open (and, for `auth`, its mcp-pki session). */
async function connectClients(p: Peers, name: string): Promise<PerKind<Client> & { authFetch: AuthFetch }> {
  const plain = new Client({ name: `${name}-plain`, version: '1' })
  await plain.connect(new StreamableHTTPClientTransport(new URL(`${p.origin}/plain/mcp`)))
  const jwt = new Client({ name: `${name}-jwt`, version: '1' })
  await jwt.connect(new StreamableHTTPClientTransport(new URL(`${p.origin}/jwt/mcp`), { requestInit: { headers: { authorization: `Bearer ${p.jwt}` } } }))
  const authFetch = createAuthFetch({ url: `${p.origin}/mcp`, keyPair: p.clientKey, serverTrust: createServerTrust({ allowlist: p.trusted }) })
  const auth = new Client({ name: `${name}-auth`, version: '1' })
  await auth.connect(new StreamableHTTPClientTransport(new URL(`${p.origin}/mcp`), { fetch: authFetch }))
  return { plain, jwt, auth, authFetch }
}

/**
 * Throughput with `clients` SDK clients of each kind calling at once (each its own MCP session and,
 * for the authenticated ones, its own mcp-pki session): calls per second of each group, groups run
 * one after the other in rotating order, `rounds` times.
 */
async function concurrent(p: Peers, child: ChildProcess, clients: number, callsPerClient: number, rounds: number): Promise<PerKind<number[]>> {
  const groups: PerKind<Client[]> = { plain: [], jwt: [], auth: [] }
  for (let i = 0; i < clients; i++) {
    const c = await connectClients(p, `bench-${i}`)
    for (const kind of KINDS) groups[kind].push(c[kind])
  }
  const rate = async (group: Client[], n: number, cpuKey?: string): Promise<number> => {
    const c0 = process.cpuUsage()
    const t0 = performance.now()
    await Promise.all(group.map(async (c) => {
      for (let i = 0; i < n; i++) await c.callTool({ name: 'echo', arguments: { text: `call ${i}` } })
    }))
    const perS = (group.length * n * 1000) / (performance.now() - t0)
    if (cpuKey !== undefined) chargeClient(cpuKey, c0, group.length * n)
    return perS
  }
  for (const kind of KINDS) await rate(groups[kind], 50)
  const out: PerKind<number[]> = { plain: [], jwt: [], auth: [] }
  for (let r = 0; r < rounds; r++) {
    // CPU per round and kind (phase `conc.<r>` on the server), for a median over rounds.
    await setPhase(child, `conc.${r}`)
    for (const kind of orderOf(r, r % 2 === 1)) out[kind].push(await rate(groups[kind], callsPerClient, `conc.${r} ${kind}`))
  }
  await setPhase(child, 'off')
  for (const kind of KINDS) for (const c of groups[kind]) await c.close()
  return out
}

const r1 = (x: number): number => Math.round(x * 10) / 10
const pct = (ratio: number): number => Math.round((ratio - 1) * 1000) / 10

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === '--serve') return serve()
  const quick = argv.includes('--quick')
  const json = argv.includes('--json')
  const num = (flag: string, dflt: number): number => {
    const i = argv.indexOf(flag)
    return i === -1 ? dflt : Number(argv[i + 1])
  }
  const calls = num('--calls', quick ? 200 : 1000)
  const rounds = num('--rounds', quick ? 5 : 9)
  const warmup = num('--warmup', quick ? 200 : 1000)

  const serverKey = generateKeyPair()
  const clientKey = generateKeyPair()
  // The JWT peer's issuer key (EdDSA) and a token for the benchmark client, valid for an hour.
  const issuer = await generateJwtKeyPair('EdDSA', { crv: 'Ed25519' })
  const jwt = await new SignJWT({ scope: 'tools' })
    .setProtectedHeader({ alg: 'EdDSA' })
    .setIssuer(JWT_ISSUER)
    .setAudience(JWT_AUDIENCE)
    .setSubject('bench-client')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(issuer.privateKey)
  const keys = { server: serverKey, client: clientKey }
  const jwk = { BENCH_JWT_PUBLIC_JWK: JSON.stringify(await exportJWK(issuer.publicKey)) }
  const { child, origin } = await forkBenchServer(fileURLToPath(import.meta.url), keys, jwk, serverNodeArgs())
  try {
    const trusted = new Allowlist()
    trusted.add({ publicKeyRaw: serverKey.publicKeyRaw, metadata: { role: 'mcp_server' } })
    const peers: Peers = { origin, clientKey, trusted, jwt }
    const clients = await connectClients(peers, 'bench')
    const only = argv.indexOf('--only-kind')
    if (only !== -1) {
      // For profiles (`node --cpu-prof` here, BENCH_SERVER_NODE_ARGS for the server): one kind only.
      const kind = argv[only + 1] as Kind
      if (!KINDS.includes(kind)) throw new Error(`--only-kind takes one of ${KINDS.join(', ')}`)
      await timeCalls(clients[kind], warmup)
      await setPhase(child, 'seq')
      const t0 = performance.now()
      await timeCalls(clients[kind], calls, [], `seq ${kind}`)
      const ms = performance.now() - t0
      await setPhase(child, 'off')
      const srv = await serverCpuPerCall(child)
      const cl = clientCpu.get(`seq ${kind}`)!
      console.log(JSON.stringify({ kind, calls, wall_us: r1((ms * 1000) / calls), client_cpu_us: r1(cl.us / cl.n), server_cpu_us: r1(srv[`seq ${ROUTE[kind]}`] ?? 0) }))
      for (const k of KINDS) await clients[k].close()
      return
    }
    for (const kind of KINDS) await timeCalls(clients[kind], warmup)
    await setPhase(child, 'seq')
    const perRound: PerKind<number>[] = []
    for (let r = 0; r < rounds; r++) perRound.push(await round(clients, calls, r % 2 === 1))
    await setPhase(child, 'off')
    for (const kind of KINDS) await clients[kind].close()
    // Rounds a multiple of 6: every kind runs first, second and third equally often, in both directions.
    const conc = await concurrent(peers, child, 10, num('--concurrent-calls', quick ? 40 : 100), num('--concurrent-rounds', quick ? 6 : 12))
    const serverCpu = await serverCpuPerCall(child)
    if (process.env.BENCH_DEBUG) console.error(JSON.stringify({ perRound, conc }))
    const wall = await new Promise<PerKind<number>>((resolve) => {
      child.on('message', (m: { type?: string } & PerKind<number>) => m.type === 'wall' && resolve(m))
      child.send({ type: 'wall' })
    })
    const workUs = await authWorkUs(quick ? 2000 : 10_000)

    const seqMs = (kind: Kind): number => median(perRound.map((x) => x[kind]))
    const seqRatio = (a: Kind, b: Kind): number => median(perRound.map((x) => x[a] / x[b]))
    // time per call ratio = inverse ratio of calls/s, per round
    const concRatio = (a: Kind, b: Kind): number => median(conc[b].map((x, i) => x / conc[a][i]!))
    const authRatios = perRound.map((x) => x.auth / x.plain)
    /**
     * CPU per call by kind: sequential, the median of every call's CPU (client) and every
     * request's (server); with 10 clients, the median over rounds of each round's CPU per call.
     * Medians, because one garbage collection or a neighbour's burst moves a mean by tens of µs.
     */
    const concRound = (kind: Kind, side: 'client' | 'server'): number[] =>
      conc.plain.map((_, r) => {
        if (side === 'server') return serverCpu[`conc.${r} ${ROUTE[kind]}`] ?? 0
        const x = clientCpu.get(`conc.${r} ${kind}`)
        return x === undefined || x.n === 0 ? 0 : x.us / x.n
      })
    const cpuOf = (phase: 'seq' | 'conc'): CpuFigures => {
      const c = (kind: Kind): number => (phase === 'seq' ? median(clientCpu.get(`seq ${kind}`)?.each ?? [0]) : median(concRound(kind, 'client')))
      const sv = (kind: Kind): number => (phase === 'seq' ? (serverCpu.median[`seq ${ROUTE[kind]}`] ?? 0) : median(concRound(kind, 'server')))
      const out = {} as CpuFigures
      for (const kind of KINDS) {
        out[`${kind}_client_us`] = r1(c(kind))
        out[`${kind}_server_us`] = r1(sv(kind))
        out[`${kind}_total_us`] = r1(c(kind) + sv(kind))
      }
      for (const kind of ['jwt', 'auth'] as const) {
        out[`${kind}_client_over_plain_us`] = r1(c(kind) - c('plain'))
        out[`${kind}_server_over_plain_us`] = r1(sv(kind) - sv('plain'))
        out[`${kind}_total_over_plain_percent`] = pct((c(kind) + sv(kind)) / (c('plain') + sv('plain')))
      }
      return out
    }
    // Sequential means too (GC included): the total CPU of all calls of a kind / calls.
    const seqMean = (kind: Kind): { client: number; server: number } => {
      const x = clientCpu.get(`seq ${kind}`)
      return { client: r1(x === undefined ? 0 : x.us / x.n), server: r1(serverCpu[`seq ${ROUTE[kind]}`] ?? 0) }
    }
    const result = {
      calls_per_round: calls,
      rounds,
      warmup_calls: warmup,
      handshakes: clients.authFetch.handshakes,
      sequential: {
        plain_us_per_call: r1(seqMs('plain') * 1000),
        jwt_us_per_call: r1(seqMs('jwt') * 1000),
        auth_us_per_call: r1(seqMs('auth') * 1000),
        jwt_over_plain_percent: pct(seqRatio('jwt', 'plain')),
        auth_over_plain_percent: pct(seqRatio('auth', 'plain')),
        auth_over_plain_percent_min: pct(Math.min(...authRatios)),
        auth_over_plain_percent_max: pct(Math.max(...authRatios)),
        auth_vs_jwt_percent: pct(seqRatio('auth', 'jwt')),
      },
      concurrent: {
        clients: 10,
        rounds: conc.plain.length,
        plain_calls_per_s: Math.round(median(conc.plain)),
        jwt_calls_per_s: Math.round(median(conc.jwt)),
        auth_calls_per_s: Math.round(median(conc.auth)),
        plain_us_per_call: r1(1e6 / median(conc.plain)),
        jwt_us_per_call: r1(1e6 / median(conc.jwt)),
        auth_us_per_call: r1(1e6 / median(conc.auth)),
        jwt_over_plain_percent: pct(concRatio('jwt', 'plain')),
        auth_over_plain_percent: pct(concRatio('auth', 'plain')),
        auth_vs_jwt_percent: pct(concRatio('auth', 'jwt')),
      },
      cpu_us_per_call: { sequential: cpuOf('seq'), concurrent: cpuOf('conc') },
      cpu_us_per_call_sequential_mean: { plain: seqMean('plain'), jwt: seqMean('jwt'), auth: seqMean('auth') },
      server_wall_us: { plain: r1(wall.plain), jwt: r1(wall.jwt), auth: r1(wall.auth) },
      auth_work_us_per_call: r1(workUs),
      target: 'mcp-pki-auth within 5% of plain (sequential and 10 clients) and cheaper than the JWT peer',
      meets_target: {
        sequential: seqRatio('auth', 'plain') <= 1.05,
        concurrent: concRatio('auth', 'plain') <= 1.05,
        cheaper_than_jwt: seqRatio('auth', 'jwt') < 1 && concRatio('auth', 'jwt') < 1,
      },
    }
    if (json) process.stdout.write(JSON.stringify(result) + '\n')
    else printResult(result)
  } finally {
    // A disconnect lets the child exit on its own (and write a --cpu-prof profile); kill if it lingers.
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.disconnect()
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2000).unref())])
    child.kill()
  }
}

/**
 * The three-way table, as `npm run bench` prints it too: wall time per call (sequential: median
 * per round; 10 clients: 1 / throughput) and CPU per call (client process + server process, from
 * `process.cpuUsage`), each with its ratio to the plain SDK server.
 */
export function toolsCallTable(r: ToolsCallResult): string {
  const s = r.sequential
  const c = r.concurrent
  const cs = r.cpu_us_per_call.sequential
  const cc = r.cpu_us_per_call.concurrent
  const sign = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)}%`
  const cpu = (f: CpuFigures, kind: Kind): string => `${f[`${kind}_client_us`].toFixed(0)} + ${f[`${kind}_server_us`].toFixed(0)} = ${f[`${kind}_total_us`].toFixed(0)}`
  const over = (f: CpuFigures, kind: Kind): string => (kind === 'plain' ? '—' : sign(f[`${kind}_total_over_plain_percent`]))
  const names: PerKind<string> = { plain: 'plain SDK server, no authentication', jwt: 'bearer JWT (jose, EdDSA) per request', auth: 'mcp-pki-auth (createMcpAuth + createAuthFetch)' }
  const rows = KINDS.map((k) => [
    names[k],
    s[`${k}_us_per_call`].toFixed(0),
    k === 'plain' ? '—' : sign(s[`${k}_over_plain_percent`]),
    cpu(cs, k),
    over(cs, k),
    c[`${k}_us_per_call`].toFixed(0),
    k === 'plain' ? '—' : sign(c[`${k}_over_plain_percent`]),
    cpu(cc, k),
    over(cc, k),
  ])
  const head = ['peer', 'seq wall µs/call', 'over plain', 'seq CPU µs/call client + server (median)', 'over plain', '10 clients wall µs/call', 'over plain', '10 clients CPU µs/call (median of rounds)', 'over plain']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]): string => `| ${cells.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}

/** CPU µs per call by kind (client process, server process, both) and what jwt/auth add over plain. */
type CpuFigures = Record<`${Kind}_${'client' | 'server' | 'total'}_us` | `${'jwt' | 'auth'}_${'client' | 'server'}_over_plain_us` | `${'jwt' | 'auth'}_total_over_plain_percent`, number>

export type ToolsCallResult = {
  calls_per_round: number
  rounds: number
  sequential: Record<'plain_us_per_call' | 'jwt_us_per_call' | 'auth_us_per_call' | 'jwt_over_plain_percent' | 'auth_over_plain_percent' | 'auth_over_plain_percent_min' | 'auth_over_plain_percent_max' | 'auth_vs_jwt_percent', number>
  concurrent: Record<'clients' | 'rounds' | 'plain_calls_per_s' | 'jwt_calls_per_s' | 'auth_calls_per_s' | 'plain_us_per_call' | 'jwt_us_per_call' | 'auth_us_per_call' | 'jwt_over_plain_percent' | 'auth_over_plain_percent' | 'auth_vs_jwt_percent', number>
  cpu_us_per_call: { sequential: CpuFigures; concurrent: CpuFigures }
  server_wall_us: PerKind<number>
  auth_work_us_per_call: number
  handshakes: number
  meets_target: { sequential: boolean; concurrent: boolean; cheaper_than_jwt: boolean }
}

function printResult(r: ToolsCallResult): void {
  console.log(`MCP tools/call over HTTP, SDK 1.x client and server, ${r.rounds} rounds × ${r.calls_per_round} sequential calls per peer in rotating blocks of 10; then 10 clients per peer at once`)
  console.log(toolsCallTable(r))
  console.log(`  mcp-pki-auth vs JWT:       ${r.sequential.auth_vs_jwt_percent}% sequential, ${r.concurrent.auth_vs_jwt_percent}% with 10 clients (time per call)`)
  console.log(`  auth over plain per round: ${r.sequential.auth_over_plain_percent_min}% … ${r.sequential.auth_over_plain_percent_max}%`)
  console.log(`  auth work alone:           ${r.auth_work_us_per_call} µs per call in-process (client proof + server check, hot)`)
  for (const [phase, f] of [['sequential', r.cpu_us_per_call.sequential], ['10 clients', r.cpu_us_per_call.concurrent]] as const) {
    console.log(`  CPU over plain, ${phase.padEnd(10)}: mcp-pki-auth client +${f.auth_client_over_plain_us} µs, server +${f.auth_server_over_plain_us} µs; JWT client +${f.jwt_client_over_plain_us} µs, server +${f.jwt_server_over_plain_us} µs`)
  }
  console.log(`  server wall per request:   plain ${r.server_wall_us.plain} µs, JWT ${r.server_wall_us.jwt} µs, mcp-pki-auth ${r.server_wall_us.auth} µs (request event → response finished, median)`)
  console.log(`  handshakes:                ${r.handshakes}`)
  console.log(`  target (≤ 5% over plain, cheaper than JWT): sequential ${r.meets_target.sequential ? 'met' : 'NOT met'}, 10 clients ${r.meets_target.concurrent ? 'met' : 'NOT met'}, cheaper than JWT ${r.meets_target.cheaper_than_jwt ? 'yes' : 'NO'}`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
