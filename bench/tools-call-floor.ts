/**
 * The floor of mcp-pki-auth's cost on an MCP `tools/call`: what a proof-bound session check must
 * add whatever the code around it, measured beside what mcp-pki-auth adds. Five SDK 1.x clients
 * call one server process in rotating blocks of 10, each on its own route:
 *
 * - `plain`: the SDK's own fetch → the plain route (as in bench/mcp-tools-call.ts);
 * - `bytes`: the SDK's own fetch sending two fixed headers of the sizes of ours (a session token
 *   and an `MCP-PKI-Proof`) → the same plain route: the header bytes alone, through undici, the
 *   kernel and Node's HTTP parser;
 * - `shape`: a minimal fetch wrapper (copies the SDK's headers into a record, adds the two
 *   headers: the token and a proof with a fresh time and sequence number but no MAC computed;
 *   gives fetch a signal of its own as createAuthFetch does, see minimalFetch) →
 *   a minimal check (token → session in a Map, proof header parsed and its time window checked,
 *   the session's sequence window, `req.auth` set, the body read and parsed as the plain route
 *   does): everything of a proof check but the cryptography;
 * - `crypto`: the same wrapper with a real proof (SHA-256 of the body, HMAC-SHA256 under the
 *   session key: `createRequestProof`) → the same check with the MAC recomputed and compared. This
 *   is the floor: the protocol's own work with nothing of ours around it;
 * - `auth`: `createAuthFetch` → `createMcpAuth`.
 *
 * CPU µs per call of the client process and of the server process (`process.cpuUsage`, the server
 * charging everything from one request's arrival to the next one's to the first), as medians per
 * call, and what each path adds over plain as the median over block groups of (path − plain) in
 * the same group, so load changes on the machine cancel.
 *
 *   node --import tsx bench/tools-call-floor.ts [--calls 400] [--rounds 4] [--kinds plain,crypto,auth] [--json]
 *   BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=DIR --cpu-prof-interval 25" … (profiles the server process)
 * @module
 */
import type { ChildProcess } from 'node:child_process'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { Allowlist } from '../src/allowlist/allowlist.js'
import { createServerTrust, type ClientSession } from '../src/handshake/client-handshake.js'
import { b64u, fromB64u } from '../src/internal/bytes.js'
import { hmacPads, type HmacPads } from '../src/internal/hmac-sha256.js'
import { generateKeyPair } from '../src/keys/key-pair.js'
import { createAuthFetch, type FetchFunction } from '../src/mcp/client.js'
import { holdController, requestSignal } from '../src/mcp/request-signal.js'
import type { McpAuthInfo, McpRequest } from '../src/mcp/server.js'
import { SequenceWindows } from '../src/nonce/sequence-windows.js'
import { createRequestProof, matchRequestProof, proofMacMatches, tokenDigest } from '../src/session/session-token.js'
import { benchMcpAuth, forkBenchServer, serverNodeArgs } from './mcp-bench-server.js'
import { readJson, statefulHandler } from './mcp-tools-call.js'

export const FLOOR_KINDS = ['plain', 'bytes', 'shape', 'crypto', 'auth'] as const
export type FloorKind = (typeof FLOOR_KINDS)[number]
const ROUTE: Record<FloorKind, string> = { plain: '/plain/mcp', bytes: '/plain/mcp', shape: '/shape/mcp', crypto: '/crypto/mcp', auth: '/mcp' }
const PROOF_WINDOW_MS = 30_000

// ---------- server (child process) ----------

interface MinimalSession {
  pads: HmacPads
  digest: Buffer
  epoch: string
  authInfo: McpAuthInfo
}

/**
 * The minimal proof check: every step a proof-bound session check must take, written without the
 * library around it. With `mac` false the MAC is not computed (the `shape` path); the rest is the same.
 */
function minimalCheck(sessions: Map<string, MinimalSession>, mac: boolean, handler: (req: McpRequest, res: ServerResponse) => Promise<void>): (req: IncomingMessage, res: ServerResponse) => void {
  const windows = new SequenceWindows(1000)
  return (req, res) => {
    const authorization = req.headers.authorization
    const proof = req.headers['mcp-pki-proof']
    const token = typeof authorization === 'string' && authorization.startsWith('Bearer ') ? authorization.slice(7) : undefined
    const s = token === undefined ? undefined : sessions.get(token)
    if (s === undefined || typeof proof !== 'string') {
      res.writeHead(401).end()
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
      const now = Date.now()
      const m = matchRequestProof(proof)
      const sid = req.headers['mcp-session-id']
      const ok =
        m !== undefined &&
        Math.abs(now - Number(m[1])) <= PROOF_WINDOW_MS &&
        m[3] === s.epoch &&
        (!mac || proofMacMatches(s.pads, s.digest, m[3]!, { method: req.method ?? 'GET', target: req.url ?? '/', mcpSessionId: typeof sid === 'string' ? sid : '', body }, m[1]!, m[2]!, m[4]!)) &&
        windows.check(token!, Number(m[2]), Number(m[1]) + PROOF_WINDOW_MS + 1, now) === 'ok'
      if (!ok) {
        res.writeHead(401).end()
        return
      }
      const r = req as McpRequest
      r.auth = { ...s.authInfo }
      try {
        r.body = body.byteLength === 0 ? undefined : JSON.parse(body.toString('utf8'))
      } catch {
        res.writeHead(400).end()
        return
      }
      handler(r, res).catch(() => res.end())
    })
  }
}

async function serve(): Promise<void> {
  const mcpAuth = benchMcpAuth()
  const sessions = new Map<string, MinimalSession>()
  const plain = statefulHandler()
  const routes = new Map<string, (req: IncomingMessage, res: ServerResponse) => void>([
    ['/auth', mcpAuth.authHandler],
    ['/mcp', mcpAuth.protect(statefulHandler())],
    ['/shape/mcp', minimalCheck(sessions, false, statefulHandler())],
    ['/crypto/mcp', minimalCheck(sessions, true, statefulHandler())],
  ])
  // CPU charged per kind (named by the client in `x-floor`), from one request's arrival to the next one's.
  const cpu = new Map<string, number[]>()
  let on = false
  let lastKind: string | undefined
  let last = process.cpuUsage()
  const charge = (kind: string | undefined): void => {
    const u = process.cpuUsage()
    const spent = u.user + u.system - last.user - last.system
    last = u
    if (lastKind !== undefined) (cpu.get(lastKind) ?? cpu.set(lastKind, []).get(lastKind)!).push(spent)
    lastKind = kind
  }
  const http = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!
    const kind = req.headers['x-floor']
    if (on && typeof kind === 'string') charge(kind)
    const route = routes.get(path)
    if (route !== undefined) route(req, res)
    else if (path === '/plain/mcp') {
      readJson(req)
        .then((body) => plain(Object.assign(req, { body }), res))
        .catch(() => res.writeHead(400).end())
    } else res.writeHead(404).end()
  })
  process.on('message', (m: { type: string; on?: boolean; token?: string; key?: string; epoch?: string; fingerprint?: string }) => {
    if (m.type === 'session') {
      const key = fromB64u(m.key!)!
      sessions.set(m.token!, { pads: hmacPads(key), digest: tokenDigest(m.token!), epoch: m.epoch!, authInfo: { token: m.token!, clientId: m.fingerprint!, scopes: ['role:bench'], extra: { fingerprint: m.fingerprint } } })
      process.send!({ type: 'session' })
    } else if (m.type === 'phase') {
      charge(undefined)
      on = m.on === true
      process.send!({ type: 'phase' })
    } else if (m.type === 'cpu') {
      process.send!({ type: 'cpu', cpu: Object.fromEntries(cpu) })
    }
  })
  http.keepAliveTimeout = 60_000
  http.listen(0, '127.0.0.1', () => process.send!({ port: (http.address() as AddressInfo).port }))
  process.on('disconnect', () => process.exit(0))
}

// ---------- client (this process) ----------

/** Header values of a token and a proof of the sizes ours have (for `bytes`). */
function fixedHeaders(s: ClientSession): Record<string, string> {
  return { authorization: `Bearer ${s.token}`, 'mcp-pki-proof': createRequestProof({ session: { ...s, lastSequence: 1_000_000 }, method: 'POST', target: '/plain/mcp', body: '{}' }) }
}

/**
 * The minimal client side of a proof-bound session: the SDK's headers copied into a record (a
 * wrapper must not write into the caller's), the token, and a proof made by `proof`. It hands
 * fetch a signal of its own as createAuthFetch does (request-signal.ts): the SDK's long-lived
 * signal piles up undici listeners, which costs the plain client tens of µs per call late in a
 * run; without this the floor would pay that cost and mcp-pki-auth would not.
 */
function minimalFetch(s: ClientSession, proof: (s: ClientSession, target: string, body: string, sid: string) => string): FetchFunction {
  return async (input, init) => {
    const url = input as URL
    const headers: Record<string, string> = {}
    ;(init!.headers as Headers).forEach((v, k) => {
      headers[k] = v
    })
    headers.authorization = `Bearer ${s.token}`
    headers['mcp-pki-proof'] = proof(s, url.pathname, init!.body as string, headers['mcp-session-id'] ?? '')
    const controller = init?.signal ? requestSignal(init.signal) : undefined
    const res = await fetch(url, { ...init, headers, ...(controller === undefined ? {} : { signal: controller.signal }) })
    if (controller !== undefined) holdController(res, controller)
    return res
  }
}

/** A proof of the right form and freshness with a MAC that is not computed (for `shape`). */
const FAKE_MAC = 'A'.repeat(43)
function unsignedProof(s: ClientSession): string {
  return `t=${Date.now() + s.clockOffsetMs}, s=${++s.lastSequence}, e=${s.replayEpoch}, m=${FAKE_MAC}`
}

function signedProof(s: ClientSession, target: string, body: string, sid: string): string {
  return createRequestProof({ session: s, method: 'POST', target, body, mcpSessionId: sid })
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length === 0 ? Number.NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

function ask<T>(child: ChildProcess, msg: object, type: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }): void => {
      if (m.type !== type) return
      child.off('message', on)
      resolve(m as T)
    }
    child.on('message', on)
    child.send(msg)
  })
}

export interface FloorRow {
  client_us: number
  server_us: number
  /** Median over block groups of (this path − plain in the same group), µs per call. */
  client_over_plain_us: number
  server_over_plain_us: number
  over_plain_percent: number
  wall_over_plain_percent: number
}
export type FloorResult = { calls_per_kind: number; kinds: FloorKind[]; rows: Partial<Record<FloorKind, FloorRow>> & Record<'plain', FloorRow> }

/**
 * Runs the paths `kinds` (plain always first) side by side. Fewer paths in the rotation leave each
 * path's code warmer between its calls, so compare percentages only between runs of the same paths.
 */
export async function runFloor(calls: number, rounds: number, kinds: readonly FloorKind[] = FLOOR_KINDS): Promise<FloorResult> {
  const KINDS = (['plain', ...kinds.filter((k) => k !== 'plain')] as FloorKind[]).filter((k, i, a) => a.indexOf(k) === i)
  const serverKey = generateKeyPair()
  const clientKey = generateKeyPair()
  const { child, origin } = await forkBenchServer(fileURLToPath(import.meta.url), { server: serverKey, client: clientKey }, {}, serverNodeArgs())
  try {
    const trusted = new Allowlist()
    trusted.add({ publicKeyRaw: serverKey.publicKeyRaw })
    const serverTrust = createServerTrust({ allowlist: trusted })
    const newSession = async (): Promise<ClientSession> => {
      const s = await createAuthFetch({ url: `${origin}/mcp`, keyPair: clientKey, serverTrust }).session()
      await ask(child, { type: 'session', token: s.token, key: b64u(Buffer.from(s.sessionKey)), epoch: s.replayEpoch, fingerprint: clientKey.fingerprint }, 'session')
      return s
    }
    const fetches: Record<FloorKind, () => Promise<FetchFunction | undefined>> = {
      plain: async () => undefined,
      bytes: async () => undefined,
      shape: async () => minimalFetch(await newSession(), unsignedProof),
      crypto: async () => minimalFetch(await newSession(), signedProof),
      auth: async () => createAuthFetch({ url: `${origin}/mcp`, keyPair: clientKey, serverTrust }),
    }
    const bytes = KINDS.includes('bytes') ? fixedHeaders(await newSession()) : {}
    const clients = {} as Record<FloorKind, Client>
    for (const k of KINDS) {
      const c = new Client({ name: `floor-${k}`, version: '1' })
      // x-floor names the path to the server (one letter, so the same bytes for all).
      const requestInit = { headers: { 'x-floor': k.slice(0, 1), ...(k === 'bytes' ? bytes : {}) } }
      const f = await fetches[k]()
      await c.connect(new StreamableHTTPClientTransport(new URL(`${origin}${ROUTE[k]}`), f === undefined ? { requestInit } : { fetch: f, requestInit }))
      clients[k] = c
    }
    const each = Object.fromEntries(KINDS.map((k) => [k, []])) as unknown as Record<FloorKind, number[]>
    const wall = Object.fromEntries(KINDS.map((k) => [k, []])) as unknown as Record<FloorKind, number[]>
    const run = async (k: FloorKind, n: number, record: boolean): Promise<void> => {
      let c = process.cpuUsage()
      for (let i = 0; i < n; i++) {
        const t0 = performance.now()
        await clients[k].callTool({ name: 'echo', arguments: { text: `call ${i}` } })
        const t1 = performance.now()
        const u = process.cpuUsage()
        if (record) {
          each[k].push(u.user + u.system - c.user - c.system)
          wall[k].push(t1 - t0)
        }
        c = u
      }
    }
    for (const k of KINDS) await run(k, 300, false)
    await ask(child, { type: 'phase', on: true }, 'phase')
    for (let r = 0; r < rounds; r++) {
      for (let done = 0, i = 0; done < calls; done += 10, i++) {
        const order = KINDS.map((_, j) => KINDS[(i + j) % KINDS.length]!)
        if (r % 2 === 1) order.reverse()
        for (const k of order) await run(k, 10, true)
      }
    }
    await ask(child, { type: 'phase', on: false }, 'phase')
    const srv = (await ask<{ cpu: Record<string, number[]> }>(child, { type: 'cpu' }, 'cpu')).cpu
    const server = (k: FloorKind): number[] => srv[k.slice(0, 1)] ?? []
    const groups = Math.floor(each.plain.length / 10)
    const block = (xs: number[], g: number): number => xs.slice(g * 10, g * 10 + 10).reduce((a, b) => a + b, 0) / 10
    const r1 = (x: number): number => Math.round(x * 10) / 10
    const rows = {} as FloorResult['rows']
    for (const k of KINDS) {
      const dc: number[] = []
      const ds: number[] = []
      const ratio: number[] = []
      const wr: number[] = []
      for (let g = 0; g < groups; g++) {
        const c = block(each[k], g)
        const s = block(server(k), g)
        const pc = block(each.plain, g)
        const ps = block(server('plain'), g)
        dc.push(c - pc)
        ds.push(s - ps)
        ratio.push((c + s) / (pc + ps))
        wr.push(block(wall[k], g) / block(wall.plain, g))
      }
      rows[k] = {
        client_us: r1(median(each[k])),
        server_us: r1(median(server(k))),
        client_over_plain_us: r1(median(dc)),
        server_over_plain_us: r1(median(ds)),
        over_plain_percent: r1((median(ratio) - 1) * 100),
        wall_over_plain_percent: r1((median(wr) - 1) * 100),
      }
    }
    for (const k of KINDS) await clients[k].close()
    return { calls_per_kind: calls * rounds, kinds: KINDS, rows }
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.disconnect()
    // A profiled server (BENCH_SERVER_NODE_ARGS) takes seconds to write its profile: give it time.
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, serverNodeArgs().length === 0 ? 2000 : 60_000).unref())])
    child.kill()
  }
}

const NAMES: Record<FloorKind, string> = {
  plain: 'plain SDK client and server',
  bytes: '+ two headers of our sizes (bytes only)',
  shape: '+ minimal check, no cryptography',
  crypto: '+ proof MAC both sides: the floor',
  auth: 'mcp-pki-auth (createAuthFetch + createMcpAuth)',
}

/** The floor table, as `npm run bench` prints it. */
export function floorTable(r: FloorResult): string {
  const sign = (x: number, unit: string): string => `${x >= 0 ? '+' : ''}${x.toFixed(1)}${unit}`
  const rows = r.kinds.map((k) => {
    const x = r.rows[k]!
    return [NAMES[k], x.client_us.toFixed(0), x.server_us.toFixed(0), k === 'plain' ? '—' : `${sign(x.client_over_plain_us, '')} + ${sign(x.server_over_plain_us, '')}`, k === 'plain' ? '—' : sign(x.over_plain_percent, '%'), k === 'plain' ? '—' : sign(x.wall_over_plain_percent, '%')]
  })
  const head = ['path', 'client CPU µs/call', 'server CPU µs/call', 'over plain µs (client + server)', 'CPU over plain', 'wall over plain']
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: string[]): string => `| ${cells.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n')
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  if (argv[0] === '--serve') return serve()
  const num = (flag: string, dflt: number): number => (argv.includes(flag) ? Number(argv[argv.indexOf(flag) + 1]) : dflt)
  const quick = argv.includes('--quick')
  const kinds = argv.includes('--kinds') ? (argv[argv.indexOf('--kinds') + 1] ?? '').split(',') : [...FLOOR_KINDS]
  for (const k of kinds) if (!(FLOOR_KINDS as readonly string[]).includes(k)) throw new Error(`--kinds takes some of ${FLOOR_KINDS.join(',')}`)
  const r = await runFloor(num('--calls', quick ? 100 : 400), num('--rounds', quick ? 2 : 4), kinds as FloorKind[])
  if (argv.includes('--json')) process.stdout.write(JSON.stringify(r) + '\n')
  else {
    console.log(`tools/call: the floor of a proof-bound session check (${r.calls_per_kind} calls per path in rotating blocks of 10; "over plain": medians of per-group differences)`)
    console.log(floorTable(r))
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
