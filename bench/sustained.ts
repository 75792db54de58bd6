/**
 * Sustained authenticated request load on a server with the default configuration (issue 10, item 2):
 * one `startServerFromConfig` process (in-memory replay memory, every auth.* default) answering an
 * authenticated endpoint (`/whoami`: session token + request proof checked on every request), and
 * one load process with K clients, each with its own session, sending requests back to back over
 * keep-alive connections. Prints requests/s, every status seen (a single `503 server_busy` fails the
 * target), the server's RSS and its live request windows over time.
 *
 *   node --import tsx bench/sustained.ts [--seconds 600] [--clients 8]
 *
 * Also the `sustained` group of bench/run.ts (20 s with --quick, 600 s otherwise).
 * @module
 */
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import * as http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { forkBench, nextMessage } from './lib.js'

const SELF = fileURLToPath(import.meta.url)

export interface SustainedResult {
  seconds: number
  clients: number
  requests: number
  requestsPerSecond: number
  statuses: Record<string, number>
  serverBusy: number
  /** Per 10 s slice: requests/s, server RSS (MiB), live request windows. */
  slices: { at: number; rps: number; rssMiB: number; windows: number }[]
  rssMiBStart: number
  rssMiBEnd: number
}

// ---------- server role ----------

async function serverRole(dir: string): Promise<void> {
  const { createSandbox } = await import('../src/server/sandbox.js')
  const { loadConfig } = await import('../src/config/load-config.js')
  const { startServerFromConfig } = await import('../src/server/start-server.js')
  const { createWhoamiHandler } = await import('../src/server/whoami.js')
  const { InMemoryNonceStore } = await import('../src/nonce/memory-nonce-store.js')
  // The sandbox config names keys and allowlists only: every auth.* setting is the default.
  const sb = await createSandbox(dir, { server: { audit: { enabled: false } } })
  const handlers: { whoami?: ReturnType<typeof createWhoamiHandler> } = {}
  const running = await startServerFromConfig(await loadConfig(sb.serverConfigPath, { env: {} }), {
    port: 0,
    fallback: (req, res) => {
      if (handlers.whoami?.(req, res) !== true) res.writeHead(404).end()
    },
  })
  handlers.whoami = createWhoamiHandler(running.configured.service)
  const store = running.configured.nonceStore
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'stats') {
      const windows = store instanceof InMemoryNonceStore ? store.sessionWindows() : -1
      process.send!({ rssMiB: process.memoryUsage().rss / 1048576, windows })
    } else if (m.cmd === 'stop') void running.close().then(() => process.exit(0))
  })
  process.send!({ ready: true, port: running.address.port, clientConfig: sb.clientConfigPath, authUrl: running.authUrl })
}

// ---------- load role ----------

async function loadRole(o: { port: number; clientConfig: string; authUrl: string; seconds: number; clients: number }): Promise<void> {
  const { loadConfig } = await import('../src/config/load-config.js')
  const { authenticate, authenticateOptionsFromConfig } = await import('../src/transport/http-client.js')
  const { sessionHeaders } = await import('../src/server/whoami.js')
  const cfg = await loadConfig(o.clientConfig, { env: {} })
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.clients })
  const statuses: Record<string, number> = {}
  let done = 0
  const sessions: Awaited<ReturnType<typeof authenticate>>[] = []
  for (let i = 0; i < o.clients; i++) sessions.push(await authenticate({ ...(await authenticateOptionsFromConfig(cfg, o.authUrl)), url: o.authUrl }))
  const body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
  const end = Date.now() + o.seconds * 1000
  const one = (s: (typeof sessions)[number]): Promise<void> =>
    new Promise((resolve) => {
      const headers = { ...sessionHeaders(s, 'POST', '/whoami', body), 'content-type': 'application/json', 'content-length': String(body.length) }
      const req = http.request({ host: '127.0.0.1', port: o.port, path: '/whoami', method: 'POST', agent, headers }, (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => (text += d.length < 200 ? d : ''))
        res.on('end', () => {
          const code = res.statusCode === 200 ? '' : (/"code":"([a-z_]+)"/.exec(text)?.[1] ?? '')
          const k = `${res.statusCode}${code === '' ? '' : ' ' + code}`
          statuses[k] = (statuses[k] ?? 0) + 1
          done++
          resolve()
        })
      })
      req.on('error', (e: NodeJS.ErrnoException) => {
        statuses[`error ${e.code ?? e.message}`] = (statuses[`error ${e.code ?? e.message}`] ?? 0) + 1
        resolve()
      })
      req.end(body)
    })
  const ticker = setInterval(() => process.send!({ tick: true, done }), 1000)
  await Promise.all(
    sessions.map(async (s) => {
      while (Date.now() < end) await one(s)
    }),
  )
  clearInterval(ticker)
  agent.destroy()
  process.send!({ finished: true, done, statuses })
}

// ---------- driver ----------

const child = (args: string[]): ChildProcess => forkBench(SELF, args)

export async function runSustained(seconds: number, clients: number, log: (line: string) => void = () => undefined): Promise<SustainedResult> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-sustained-'))
  const server = child(['server', dir])
  try {
    const ready = await nextMessage<{ ready?: boolean; port: number; clientConfig: string; authUrl: string }>(server, (m) => m.ready === true)
    const stats = async (): Promise<{ rssMiB: number; windows: number }> => {
      const p = nextMessage<{ rssMiB?: number; windows: number }>(server, (m) => m.rssMiB !== undefined)
      server.send({ cmd: 'stats' })
      return (await p) as { rssMiB: number; windows: number }
    }
    const start = await stats()
    const load = child(['load', JSON.stringify({ port: ready.port, clientConfig: ready.clientConfig, authUrl: ready.authUrl, seconds, clients })])
    const slices: SustainedResult['slices'] = []
    let last = 0
    let lastAt = Date.now()
    let ticks = 0
    load.on('message', (m: { tick?: boolean; done: number }) => {
      if (m.tick !== true || ++ticks % 10 !== 0) return
      const now = Date.now()
      const rps = ((m.done - last) * 1000) / (now - lastAt)
      last = m.done
      lastAt = now
      void stats().then((s) => {
        slices.push({ at: ticks, rps: Math.round(rps), rssMiB: Math.round(s.rssMiB), windows: s.windows })
        log(`${ticks} s: ${Math.round(rps)} requests/s, server RSS ${Math.round(s.rssMiB)} MiB, ${s.windows} live windows`)
      })
    })
    const fin = await nextMessage<{ finished?: boolean; done: number; statuses: Record<string, number> }>(load, (m) => m.finished === true)
    const endStats = await stats()
    const serverBusy = Object.entries(fin.statuses).filter(([k]) => k.startsWith('503')).reduce((a, [, n]) => a + n, 0)
    return {
      seconds,
      clients,
      requests: fin.done,
      requestsPerSecond: Math.round(fin.done / seconds),
      statuses: fin.statuses,
      serverBusy,
      slices,
      rssMiBStart: Math.round(start.rssMiB),
      rssMiBEnd: Math.round(endStats.rssMiB),
    }
  } finally {
    server.send({ cmd: 'stop' })
    await new Promise((r) => setTimeout(r, 300))
    if (server.exitCode === null) server.kill()
    rmSync(dir, { recursive: true, force: true })
  }
}

const [role, arg] = process.argv.slice(2)
if (role === 'server') await serverRole(arg!)
else if (role === 'load') await loadRole(JSON.parse(arg!) as Parameters<typeof loadRole>[0])
else if (process.argv[1] === SELF) {
  const argv = process.argv.slice(2)
  const num = (flag: string, d: number): number => (argv.includes(flag) ? Number(argv[argv.indexOf(flag) + 1]) : d)
  const r = await runSustained(num('--seconds', 600), num('--clients', 8), (l) => console.log(l))
  console.log(JSON.stringify(r, null, 2))
}
