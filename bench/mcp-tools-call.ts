/**
 * The cost of authentication per MCP `tools/call` over HTTP, once a session exists.
 *
 *   node --import tsx bench/mcp-tools-call.ts [--quick] [--calls N] [--rounds R] [--json]
 * Also: 10 SDK clients of each kind at once (calls/s of each group, alternating).
 *
 * One server process (a child of this one) serves the same SDK McpServer twice: `/plain/mcp` with
 * no authentication and `/mcp` behind createMcpAuth (token + request proof per request, in-memory
 * nonce store). This process runs two SDK clients over StreamableHTTPClientTransport, one plain and
 * one with createAuthFetch, each with its MCP session and (for the second) its mcp-pki session
 * already open. Each round times N sequential `tools/call` on each after a
 * warm-up, in alternating blocks of 10 calls; the figures are medians over rounds of the per-round
 * median call time.
 * @module
 */
import { fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { Allowlist } from '../src/allowlist/allowlist.js'
import { createServerTrust } from '../src/handshake/client-handshake.js'
import { b64u, fromB64u } from '../src/internal/bytes.js'
import { generateKeyPair, keyPairFromPrivateKey, privateKeyFromSeed, privateKeySeed, type Ed25519KeyPair } from '../src/keys/key-pair.js'
import { createAuthFetch } from '../src/mcp/client.js'
import { createMcpAuth, type McpRequest } from '../src/mcp/server.js'
import { InMemoryNonceStore } from '../src/nonce/memory-nonce-store.js'
import { createAuthService } from '../src/transport/auth-service.js'
import { createRequestProof } from '../src/session/session-token.js'

// ---------- server (child process) ----------

function buildServer(): McpServer {
  const server = new McpServer({ name: 'bench', version: '1.0.0' })
  server.registerTool('echo', { description: 'echo', inputSchema: { text: z.string() } }, ({ text }) => ({ content: [{ type: 'text', text }] }))
  return server
}

function statefulHandler(): (req: McpRequest, res: ServerResponse) => Promise<void> {
  const transports = new Map<string, StreamableHTTPServerTransport>()
  return async (req, res) => {
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

function readJson(req: IncomingMessage): Promise<unknown> {
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

async function serve(): Promise<void> {
  const server = keyPairFromPrivateKey(privateKeyFromSeed(fromB64u(process.env.BENCH_SERVER_SEED!)!))
  const allowlist = new Allowlist()
  allowlist.add({ publicKeyRaw: fromB64u(process.env.BENCH_CLIENT_PUB!)!, metadata: { role: 'bench' } })
  const service = createAuthService({ keyPair: server, allowlist, nonceStore: new InMemoryNonceStore({ maxEntries: 1_000_000 }) })
  const mcpAuth = createMcpAuth(service)
  const plain = statefulHandler()
  const authed = mcpAuth.protect(statefulHandler())
  const http = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path === '/auth') mcpAuth.authHandler(req, res)
    else if (path === '/mcp') authed(req, res)
    else if (path === '/plain/mcp') {
      readJson(req)
        .then((body) => plain(Object.assign(req, { body }), res))
        .catch(() => res.writeHead(400).end())
    } else res.writeHead(404).end()
  })
  // Wall time per request inside this process, request event → response finished, by route.
  const wall: Record<string, number[]> = { '/mcp': [], '/plain/mcp': [] }
  http.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const t0 = performance.now()
    const route = (req.url ?? '').split('?')[0]!
    res.once('finish', () => wall[route]?.push((performance.now() - t0) * 1000))
  })
  process.on('message', (m: { type?: string }) => {
    if (m.type !== 'wall') return
    const med = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1] ?? 0
    process.send!({ type: 'wall', auth: med(wall['/mcp']!), plain: med(wall['/plain/mcp']!), n: wall['/mcp']!.length })
  })
  http.keepAliveTimeout = 60_000
  http.listen(0, '127.0.0.1', () => process.send!({ port: (http.address() as AddressInfo).port }))
  process.on('disconnect', () => process.exit(0))
}

// ---------- client (this process) ----------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function timeCalls(client: Client, n: number, into?: number[]): Promise<number> {
  const times: number[] = into ?? []
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await client.callTool({ name: 'echo', arguments: { text: `call ${i}` } })
    times.push(performance.now() - t0)
  }
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

/** One round: both clients in small alternating blocks, so load changes on the machine hit both alike. */
async function round(plain: Client, authed: Client, calls: number, flip: boolean): Promise<{ p: number; a: number }> {
  const block = 10
  const pt: number[] = []
  const at: number[] = []
  for (let done = 0; done < calls; done += block) {
    const k = Math.min(block, calls - done)
    if ((done / block) % 2 === (flip ? 1 : 0)) {
      await timeCalls(plain, k, pt)
      await timeCalls(authed, k, at)
    } else {
      await timeCalls(authed, k, at)
      await timeCalls(plain, k, pt)
    }
  }
  return { p: median(pt), a: median(at) }
}

/**
 * Throughput with `clients` SDK clients of each kind calling at once (each its own MCP session and,
 * for the authenticated ones, its own mcp-pki session): calls per second of each group, groups run
 * one after the other, alternating, `rounds` times.
 */
async function concurrent(origin: string, clientKey: Ed25519KeyPair, trusted: Allowlist, clients: number, callsPerClient: number, rounds: number): Promise<{ plain: number[]; auth: number[] }> {
  const plain: Client[] = []
  const authed: Client[] = []
  for (let i = 0; i < clients; i++) {
    const p = new Client({ name: `bench-plain-${i}`, version: '1' })
    await p.connect(new StreamableHTTPClientTransport(new URL(`${origin}/plain/mcp`)))
    plain.push(p)
    const f = createAuthFetch({ url: `${origin}/mcp`, keyPair: clientKey, serverTrust: createServerTrust({ allowlist: trusted }) })
    const a = new Client({ name: `bench-auth-${i}`, version: '1' })
    await a.connect(new StreamableHTTPClientTransport(new URL(`${origin}/mcp`), { fetch: f }))
    authed.push(a)
  }
  const rate = async (group: Client[], n: number): Promise<number> => {
    const t0 = performance.now()
    await Promise.all(group.map(async (c) => {
      for (let i = 0; i < n; i++) await c.callTool({ name: 'echo', arguments: { text: `call ${i}` } })
    }))
    return (group.length * n * 1000) / (performance.now() - t0)
  }
  await rate(plain, 50)
  await rate(authed, 50)
  const out = { plain: [] as number[], auth: [] as number[] }
  for (let r = 0; r < rounds; r++) {
    if (r % 2 === 0) {
      out.plain.push(await rate(plain, callsPerClient))
      out.auth.push(await rate(authed, callsPerClient))
    } else {
      out.auth.push(await rate(authed, callsPerClient))
      out.plain.push(await rate(plain, callsPerClient))
    }
  }
  for (const c of [...plain, ...authed]) await c.close()
  return out
}

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
  const warmup = quick ? 200 : 1000

  const serverKey = generateKeyPair()
  const clientKey = generateKeyPair()
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], {
    // BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p" profiles the server process.
    execArgv: ['--import', 'tsx', ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean)],
    env: { ...process.env, BENCH_SERVER_SEED: b64u(privateKeySeed(serverKey.privateKey)), BENCH_CLIENT_PUB: b64u(clientKey.publicKeyRaw) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port))
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)))
  })
  const origin = `http://127.0.0.1:${port}`
  try {
    const trusted = new Allowlist()
    trusted.add({ publicKeyRaw: serverKey.publicKeyRaw, metadata: { role: 'mcp_server' } })
    const authFetch = createAuthFetch({ url: `${origin}/mcp`, keyPair: clientKey, serverTrust: createServerTrust({ allowlist: trusted }) })
    const plain = new Client({ name: 'bench-plain', version: '1' })
    await plain.connect(new StreamableHTTPClientTransport(new URL(`${origin}/plain/mcp`)))
    const authed = new Client({ name: 'bench-auth', version: '1' })
    await authed.connect(new StreamableHTTPClientTransport(new URL(`${origin}/mcp`), { fetch: authFetch }))

    await timeCalls(plain, warmup)
    await timeCalls(authed, warmup)
    const plainMs: number[] = []
    const authMs: number[] = []
    const ratios: number[] = []
    for (let r = 0; r < rounds; r++) {
      const { p, a } = await round(plain, authed, calls, r % 2 === 1)
      plainMs.push(p)
      authMs.push(a)
      ratios.push(a / p)
    }
    await plain.close()
    await authed.close()
    const conc = await concurrent(origin, clientKey, trusted, 10, quick ? 50 : 200, quick ? 3 : 5)
    const concRatios = conc.plain.map((p, i) => p / conc.auth[i]!)
    const wall = await new Promise<{ auth: number; plain: number }>((resolve) => {
      child.on('message', (m: { type?: string; auth: number; plain: number }) => m.type === 'wall' && resolve(m))
      child.send({ type: 'wall' })
    })

    const workUs = await authWorkUs(quick ? 2000 : 10_000)
    const result = {
      calls_per_round: calls,
      rounds,
      handshakes: authFetch.handshakes,
      plain_ms_per_call: Math.round(median(plainMs) * 1000) / 1000,
      authenticated_ms_per_call: Math.round(median(authMs) * 1000) / 1000,
      added_us_per_call: Math.round((median(authMs) - median(plainMs)) * 1000 * 10) / 10,
      ratio: Math.round(median(ratios) * 1000) / 1000,
      overhead_percent: Math.round((median(ratios) - 1) * 1000) / 10,
      ratio_min: Math.round(Math.min(...ratios) * 1000) / 1000,
      ratio_max: Math.round(Math.max(...ratios) * 1000) / 1000,
      auth_work_us_per_call: Math.round(workUs * 10) / 10,
      concurrent_clients: 10,
      concurrent_plain_calls_per_s: Math.round(median(conc.plain)),
      concurrent_authenticated_calls_per_s: Math.round(median(conc.auth)),
      concurrent_time_ratio: Math.round(median(concRatios) * 1000) / 1000,
      concurrent_overhead_percent: Math.round((median(concRatios) - 1) * 1000) / 10,
      server_wall_us_plain: Math.round(wall.plain * 10) / 10,
      server_wall_us_authenticated: Math.round(wall.auth * 10) / 10,
      auth_work_percent_of_plain_call: Math.round((workUs / 1000 / median(plainMs)) * 1000) / 10,
      target: 'overhead under 5% once a session exists',
      meets_target: median(ratios) < 1.05,
    }
    if (json) {
      process.stdout.write(JSON.stringify(result) + '\n')
    } else {
      console.log(`MCP tools/call over HTTP, SDK client and server, sequential, ${rounds} rounds × ${calls} calls (after ${warmup} warm-up calls each)`)
      console.log(`  without authentication: ${result.plain_ms_per_call.toFixed(3)} ms per call (median)`)
      console.log(`  with mcp-pki-auth:      ${result.authenticated_ms_per_call.toFixed(3)} ms per call (median; token + request proof on every request)`)
      console.log(`  added per call:         ${result.added_us_per_call} µs; ratio ${result.ratio} (min ${result.ratio_min}, max ${result.ratio_max}) → ${result.overhead_percent}%`)
      console.log(`  auth work alone:        ${result.auth_work_us_per_call} µs per call in-process (client proof + server check, hot) = ${result.auth_work_percent_of_plain_call}% of a plain call`)
      console.log(`  server wall per request: ${result.server_wall_us_plain} µs plain, ${result.server_wall_us_authenticated} µs authenticated (request event → response finished, median)`)
      console.log(`  10 clients at once:     ${result.concurrent_plain_calls_per_s} calls/s plain, ${result.concurrent_authenticated_calls_per_s} calls/s authenticated → ${result.concurrent_overhead_percent}% more time per call (median of per-round pairs)`)
      console.log(`  handshakes:             ${result.handshakes}`)
      console.log(`  target (< 5%):          ${result.meets_target ? 'met' : 'NOT met'}`)
    }
  } finally {
    // A disconnect lets the child exit on its own (and write a --cpu-prof profile); kill if it lingers.
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.disconnect()
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2000).unref())])
    child.kill()
  }
}

await main()
