/**
 * Which side the mcp-pki-auth overhead on `tools/call` is on: CPU µs per call of the client process
 * and of the server process, with three SDK 1.x clients calling in rotating blocks of 10:
 *
 * - `plain`: the SDK's own fetch → the plain route (`/plain/mcp`);
 * - `headers-only`: the SDK's own fetch with two fixed headers of the sizes of ours (a bearer
 *   token and an `MCP-PKI-Proof`) → the plain route: what the bytes alone cost, both sides;
 * - `client-only`: createAuthFetch → the same plain route (the server ignores the headers), so
 *   client CPU over `plain` is what createAuthFetch costs, with the server doing the same work;
 * - `auth`: createAuthFetch → the protected route (`/mcp`), so server CPU over `client-only` is
 *   what createMcpAuth costs, for the same client work.
 *
 *   node --import tsx bench/tools-call-split.ts [--calls 600] [--rounds 8]
 *
 * Not part of `npm run bench`; the exploration tool behind docs/benchmarks.md, "Where the time goes
 * on tools/call". CPU per call is far less sensitive to other work on the machine than wall time.
 * @module
 */
import { fileURLToPath } from 'node:url'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { Allowlist } from '../src/allowlist/allowlist.js'
import { createServerTrust } from '../src/handshake/client-handshake.js'
import { b64u } from '../src/internal/bytes.js'
import { generateKeyPair } from '../src/keys/key-pair.js'
import { createAuthFetch, type AuthFetch } from '../src/mcp/client.js'
import { createRequestProof } from '../src/session/session-token.js'
import { benchFile } from './lib.js'
import { forkBenchServer, serverNodeArgs } from './mcp-bench-server.js'
import { clientCpu, median, serverCpuPerCall, setPhase, timeCalls } from './mcp-tools-call.js'

const SPLIT = ['plain', 'headers-only', 'client-only', 'auth'] as const
type Split = (typeof SPLIT)[number]

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  const num = (flag: string, dflt: number): number => (argv.includes(flag) ? Number(argv[argv.indexOf(flag) + 1]) : dflt)
  const calls = num('--calls', 600)
  const rounds = num('--rounds', 8)
  const serverKey = generateKeyPair()
  const clientKey = generateKeyPair()
  const script = fileURLToPath(new URL(benchFile('./mcp-tools-call.ts'), import.meta.url))
  const jwk = { BENCH_JWT_PUBLIC_JWK: JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: b64u(generateKeyPair().publicKeyRaw) }) }
  const { child, origin } = await forkBenchServer(script, { server: serverKey, client: clientKey }, jwk, serverNodeArgs())
  try {
    const trusted = new Allowlist()
    trusted.add({ publicKeyRaw: serverKey.publicKeyRaw })
    const serverTrust = createServerTrust({ allowlist: trusted })
    const connect = async (kind: Split, path: string, withAuth: boolean, extra: Record<string, string> = {}): Promise<Client> => {
      const c = new Client({ name: 'split', version: '1' })
      const fetch = withAuth ? createAuthFetch({ url: `${origin}${path}`, authUrl: `${origin}/auth`, keyPair: clientKey, serverTrust }) : undefined
      // x-split names the client to the server (the same size for all: a one-letter value).
      const requestInit = { headers: { 'x-split': kind.slice(0, 1), ...extra } }
      await c.connect(new StreamableHTTPClientTransport(new URL(`${origin}${path}`), fetch === undefined ? { requestInit } : { fetch, requestInit }))
      return { c, fetch } as never
    }
    const made = {
      plain: await connect('plain', '/plain/mcp', false),
      'client-only': await connect('client-only', '/plain/mcp', true),
      auth: await connect('auth', '/mcp', true),
    } as unknown as Record<Split, { c: Client; fetch?: AuthFetch }>
    // Headers of the same sizes as the ones createAuthFetch sends (its token and a proof).
    const s = await made.auth.fetch!.session()
    const proof = createRequestProof({ session: s, method: 'POST', target: '/mcp', body: '{}' })
    made['headers-only'] = (await connect('headers-only', '/plain/mcp', false, { authorization: `Bearer ${s.token}`, 'mcp-pki-proof': proof })) as never
    const clients = Object.fromEntries(SPLIT.map((k) => [k, made[k].c])) as Record<Split, Client>
    for (const k of SPLIT) await timeCalls(clients[k], 500)
    await setPhase(child, 'seq')
    const wall = Object.fromEntries(SPLIT.map((k) => [k, []])) as unknown as Record<Split, number[]>
    for (let r = 0; r < rounds; r++) {
      for (let done = 0, i = 0; done < calls; done += 10, i++) {
        const order = SPLIT.map((_, k) => SPLIT[(i + k) % SPLIT.length]!)
        if (r % 2 === 1) order.reverse()
        for (const k of order) await timeCalls(clients[k], 10, wall[k], `seq ${k}`)
      }
    }
    await setPhase(child, 'off')
    const srv = await serverCpuPerCall(child)
    const split = await new Promise<Record<string, unknown>>((resolve) => {
      child.on('message', (m: { type?: string; split?: Record<string, unknown> }) => m.type === 'split' && resolve(m.split!))
      child.send({ type: 'split' })
    })
    const serverOf = Object.fromEntries(SPLIT.map((k) => [k, srv[`seq ${k === 'auth' ? '/mcp' : '/plain/mcp'}#${k.slice(0, 1)}`] ?? 0])) as Record<Split, number>
    const r1 = (x: number): number => Math.round(x * 10) / 10
    const out: Record<string, unknown> = { calls_per_kind: calls * rounds }
    for (const k of SPLIT) {
      const c = clientCpu.get(`seq ${k}`)!
      const srvKey = `seq ${k === 'auth' ? '/mcp' : '/plain/mcp'}#${k.slice(0, 1)}`
      out[k] = { wall_us_median: r1(median(wall[k]) * 1000), client_cpu_us: r1(c.us / c.n), server_cpu_us: r1(serverOf[k]), client_cpu_us_median: r1(median(c.each)), server_cpu_us_median: r1(srv.median[srvKey] ?? 0) }
    }
    const cpu = (k: Split): { client_cpu_us: number; server_cpu_us: number } => out[k] as never
    const med = (k: Split): { client_cpu_us_median: number; server_cpu_us_median: number } => out[k] as never
    out.medians_over_plain_us = {
      headers_only: { client: r1(med('headers-only').client_cpu_us_median - med('plain').client_cpu_us_median), server: r1(med('headers-only').server_cpu_us_median - med('plain').server_cpu_us_median) },
      createAuthFetch_client: r1(med('client-only').client_cpu_us_median - med('plain').client_cpu_us_median),
      createMcpAuth_server: r1(med('auth').server_cpu_us_median - med('client-only').server_cpu_us_median),
    }
    out.headers_only_cpu_over_plain_us = { client: r1(cpu('headers-only').client_cpu_us - cpu('plain').client_cpu_us), server: r1(cpu('headers-only').server_cpu_us - cpu('plain').server_cpu_us) }
    out.createAuthFetch_client_cpu_over_plain_us = r1(cpu('client-only').client_cpu_us - cpu('plain').client_cpu_us)
    out.createMcpAuth_server_cpu_over_plain_us = r1(cpu('auth').server_cpu_us - cpu('client-only').server_cpu_us)
    out.server_wall_medians = split
    out.plain_total_cpu_us = r1(cpu('plain').client_cpu_us + cpu('plain').server_cpu_us)
    console.log(JSON.stringify(out))
    for (const k of SPLIT) await clients[k].close()
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.disconnect()
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2000).unref())])
    child.kill()
  }
}

await main()
