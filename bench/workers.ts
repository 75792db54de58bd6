/**
 * `--workers` (issue 10, item 4): authenticated requests/s with 1 process vs 2 workers, and what
 * one replay check over IPC costs (the primary's share is what limits many cores).
 *
 * Server: one process (`startServerFromConfig`, as `--workers 1`) or a cluster of 2 workers run
 * through src/server/cluster.ts (`runPrimary`, replay memory in the primary, asked over IPC), each
 * answering `POST /whoami` (session token + request proof checked per request). Load: another
 * process, K clients with a session each, back to back over keep-alive connections.
 *
 *   node --import tsx bench/workers.ts [--seconds 10] [--clients 8] [--rounds 2]
 *
 * Also the `workers` group of bench/run.ts.
 * @module
 */
import cluster from 'node:cluster'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import * as http from 'node:http'
import * as net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { forkBench, nextMessage } from './lib.js'

const SELF = fileURLToPath(import.meta.url)

export interface WorkersResult {
  seconds: number
  clients: number
  /** requests/s per round, alternating 1 and 2 workers. */
  one: number[]
  two: number[]
  ratio: number
  non200: Record<string, number>
  ipc: IpcCost
}

export interface IpcCost {
  /** One check, waited for before the next (µs, round trip worker → primary → worker). */
  sequentialUs: number
  /** Checks/s one worker gets with 64 in flight. */
  pipelinedPerSecond: number
  /** Primary CPU per check (µs): 1e6 / this = checks/s one primary core can answer. */
  primaryCpuUs: number
}

// ---------- server role ----------

async function serverRole(dir: string, workers: number, port: number): Promise<void> {
  const { createSandbox } = await import('../src/server/sandbox.js')
  const { loadConfig } = await import('../src/config/load-config.js')
  const { runPrimary, workerReplayStore, reportReady } = await import('../src/server/cluster.js')
  const configPath = join(dir, 'server_config.yml')
  if (cluster.isPrimary) await createSandbox(dir, { server: { audit: { enabled: false }, transport: { port } } })
  const config = await loadConfig(configPath, { env: {} })
  if (cluster.isPrimary && workers > 1) {
    process.on('message', (m: { cmd?: string }) => {
      if (m.cmd === 'stop') process.kill(process.pid, 'SIGTERM')
    })
    await runPrimary({ config, workers, log: () => undefined, onReady: () => process.send!({ ready: true, clientConfig: join(dir, 'client_config.yml') }) })
    process.exit(0)
  }
  const { startServerFromConfig } = await import('../src/server/start-server.js')
  const { createWhoamiHandler } = await import('../src/server/whoami.js')
  const handlers: { whoami?: ReturnType<typeof createWhoamiHandler> } = {}
  const replayStore = workerReplayStore(config)
  const running = await startServerFromConfig(config, {
    ...(replayStore ? { replayStore } : {}),
    fallback: (req, res) => {
      if (handlers.whoami?.(req, res) !== true) res.writeHead(404).end()
    },
  })
  handlers.whoami = createWhoamiHandler(running.configured.service)
  if (cluster.isWorker) {
    reportReady('ready')
    process.on('message', (m: Record<string, unknown>) => {
      if (typeof m.mcpPkiStop === 'string') void running.close().then(() => process.exit(0))
    })
    return
  }
  process.on('message', (m: { cmd?: string }) => {
    if (m.cmd === 'stop') void running.close().then(() => process.exit(0))
  })
  process.send!({ ready: true, clientConfig: join(dir, 'client_config.yml') })
}

// ---------- load role ----------

async function loadRole(o: { port: number; clientConfig: string; seconds: number; clients: number }): Promise<void> {
  const { loadConfig } = await import('../src/config/load-config.js')
  const { authenticate, authenticateOptionsFromConfig } = await import('../src/transport/http-client.js')
  const { sessionHeaders } = await import('../src/server/whoami.js')
  const authUrl = `http://127.0.0.1:${o.port}/auth`
  const cfg = await loadConfig(o.clientConfig, { env: {} })
  const sessions: Awaited<ReturnType<typeof authenticate>>[] = []
  for (let i = 0; i < o.clients; i++) sessions.push(await authenticate({ ...(await authenticateOptionsFromConfig(cfg, authUrl)), url: authUrl }))
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.clients })
  const statuses: Record<string, number> = {}
  let ok = 0
  const body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
  const one = (s: (typeof sessions)[number]): Promise<void> =>
    new Promise((resolve) => {
      const headers = { ...sessionHeaders(s, 'POST', '/whoami', body), 'content-type': 'application/json', 'content-length': String(body.length) }
      const req = http.request({ host: '127.0.0.1', port: o.port, path: '/whoami', method: 'POST', agent, headers }, (res) => {
        res.resume()
        res.on('end', () => {
          if (res.statusCode === 200) ok++
          else statuses[String(res.statusCode)] = (statuses[String(res.statusCode)] ?? 0) + 1
          resolve()
        })
      })
      req.on('error', (e: NodeJS.ErrnoException) => {
        statuses[`error ${e.code ?? ''}`] = (statuses[`error ${e.code ?? ''}`] ?? 0) + 1
        resolve()
      })
      req.end(body)
    })
  const started = Date.now()
  const end = started + o.seconds * 1000
  await Promise.all(sessions.map(async (s) => {
    while (Date.now() < end) await one(s)
  }))
  agent.destroy()
  process.send!({ finished: true, rps: Math.round((ok * 1000) / (Date.now() - started)), statuses })
}

// ---------- IPC cost role ----------

async function ipcRole(): Promise<void> {
  const { InMemoryNonceStore } = await import('../src/nonce/memory-nonce-store.js')
  const { IpcNonceStore, answerNonceQuestion } = await import('../src/nonce/ipc-nonce-store.js')
  if (cluster.isPrimary) {
    const store = new InMemoryNonceStore({ maxEntries: 10_000 })
    const w = cluster.fork({ EPOCH: store.epoch() })
    const peer = { send: (x: unknown) => w.send(x as never), isConnected: () => w.isConnected() }
    let cpuStart = process.cpuUsage()
    w.on('message', (m: Record<string, unknown>) => {
      if (answerNonceQuestion(store, peer, m)) return
      if (m.phase === 'pipelined-start') cpuStart = process.cpuUsage()
      if (m.phase === 'done') {
        const cpu = process.cpuUsage(cpuStart)
        process.send!({ ipc: { sequentialUs: m.sequentialUs, pipelinedPerSecond: m.pipelinedPerSecond, primaryCpuUs: (cpu.user + cpu.system) / (m.pipelinedCount as number) } })
        w.kill()
        process.exit(0)
      }
    })
    return
  }
  const store = new IpcNonceStore({ channel: process as never, epoch: process.env.EPOCH! })
  const epoch = store.epoch()
  const forget = Date.now() + 600_000
  for (let i = 1; i <= 2000; i++) await store.checkSequence('warm', i, forget, epoch)
  const n = 20_000
  let t = process.hrtime.bigint()
  for (let i = 1; i <= n; i++) await store.checkSequence('seq', i, forget, epoch)
  const sequentialUs = Number(process.hrtime.bigint() - t) / 1000 / n
  process.send!({ phase: 'pipelined-start' })
  const total = 100_000
  let next = 1
  t = process.hrtime.bigint()
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next <= total) await store.checkSequence('pipe', next++, forget, epoch)
  }))
  const pipelinedPerSecond = total / (Number(process.hrtime.bigint() - t) / 1e9)
  process.send!({ phase: 'done', sequentialUs, pipelinedPerSecond, pipelinedCount: total })
}

// ---------- driver ----------

const child = (args: string[]): ChildProcess => forkBench(SELF, args)

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

async function measure(workers: number, seconds: number, clients: number, non200: Record<string, number>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-bench-workers-'))
  const port = await freePort()
  const server = child(['server', dir, String(workers), String(port)])
  try {
    const ready = await nextMessage<{ ready?: boolean; clientConfig: string }>(server, (m) => m.ready === true)
    const load = child(['load', JSON.stringify({ port, clientConfig: ready.clientConfig, seconds, clients })])
    const fin = await nextMessage<{ finished?: boolean; rps: number; statuses: Record<string, number> }>(load, (m) => m.finished === true)
    for (const [k, v] of Object.entries(fin.statuses)) non200[k] = (non200[k] ?? 0) + v
    return fin.rps
  } finally {
    const exited = new Promise((r) => server.once('exit', r))
    server.send({ cmd: 'stop' })
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
    if (server.exitCode === null) server.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function runWorkersBench(o: { seconds: number; clients: number; rounds: number }, log: (line: string) => void = () => undefined): Promise<WorkersResult> {
  const one: number[] = []
  const two: number[] = []
  const non200: Record<string, number> = {}
  // Alternate, so a neighbour's load on this shared machine hits both sides alike.
  for (let r = 0; r < o.rounds; r++) {
    one.push(await measure(1, o.seconds, o.clients, non200))
    log(`round ${r + 1}: 1 process ${one.at(-1)} requests/s`)
    two.push(await measure(2, o.seconds, o.clients, non200))
    log(`round ${r + 1}: 2 workers ${two.at(-1)} requests/s`)
  }
  const ipcChild = child(['ipc'])
  const { ipc } = await nextMessage<{ ipc?: IpcCost }>(ipcChild, (m) => m.ipc !== undefined) as { ipc: IpcCost }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  return { seconds: o.seconds, clients: o.clients, one, two, ratio: Math.round((median(two) / median(one)) * 100) / 100, non200, ipc }
}

const [role, ...rest] = process.argv.slice(2)
if (role === 'server') await serverRole(rest[0]!, Number(rest[1]), Number(rest[2]))
else if (role === 'load') await loadRole(JSON.parse(rest[0]!) as Parameters<typeof loadRole>[0])
else if (role === 'ipc') await ipcRole()
else if (process.argv[1] === SELF && cluster.isPrimary) {
  const argv = process.argv.slice(2)
  const num = (flag: string, d: number): number => (argv.includes(flag) ? Number(argv[argv.indexOf(flag) + 1]) : d)
  const r = await runWorkersBench({ seconds: num('--seconds', 10), clients: num('--clients', 8), rounds: num('--rounds', 2) }, (l) => console.log(l))
  console.log(JSON.stringify(r, null, 2))
}
