/**
 * `--workers N`: N processes serving one port (node:cluster), for the server and the gateway.
 *
 * The primary process serves nothing itself. It prepares the files every worker reads (the server
 * key when `keys.auto_generate`, the allowlist when `acl.auto_create`), owns the ONE in-memory
 * replay store when `auth.nonce_store.type` is `memory` (workers ask it over IPC:
 * ../nonce/ipc-nonce-store.ts), forks the workers, replaces a worker that dies, and on
 * SIGTERM/SIGINT asks every worker to finish and exits once they have.
 *
 * A worker runs the same command as one process would, with three differences: its replay store
 * is the primary's (memory) or Redis as configured; every response carries `X-MCP-PKI-Worker`
 * (the cluster worker id, to see the spread); and it reports "ready" to the primary instead of
 * printing the banner, which the primary prints once every worker listens.
 * @module
 */
import cluster, { type Worker } from 'node:cluster'
import type * as http from 'node:http'
import { availableParallelism } from 'node:os'
import type { Config } from '../config/types.js'
import { answerNonceQuestion, IpcNonceStore, type IpcChannel } from '../nonce/ipc-nonce-store.js'
import { InMemoryNonceStore } from '../nonce/memory-nonce-store.js'
import type { NonceStore } from '../nonce/nonce-store.js'

/** Header naming the worker that answered. */
export const WORKER_HEADER = 'x-mcp-pki-worker'
const WORKER_ENV = 'MCP_PKI_CLUSTER_WORKER'
const EPOCH_ENV = 'MCP_PKI_REPLAY_EPOCH'
const READY = 'mcpPkiReady'
const STOP = 'mcpPkiStop'
/** The most workers one host is given (a typo like 1000 should not fork-bomb the machine). */
export const MAX_WORKERS = 256

/** The process count `transport.workers` / `--workers` asks for ('auto' = the cores Node may use). */
export function resolveWorkerCount(value: number | 'auto' | string): number {
  if (value === 'auto') return availableParallelism()
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : NaN
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_WORKERS) {
    throw new RangeError(`workers must be a positive integer up to ${MAX_WORKERS} or "auto", got ${JSON.stringify(value)}`)
  }
  return n
}

/**
 * The process count to run: `flag` (`--workers`), else `transport.workers`. Throws RangeError for
 * a bad count or for what several processes cannot share (port 0, rotating ticket keys).
 */
export function workerCountFor(flag: string | undefined, config: Config, port: number): number {
  const workers = resolveWorkerCount(flag ?? config.transport.workers)
  if (workers === 1) return 1
  if (port === 0) throw new RangeError('workers need a fixed port (with port 0 each would get its own); set transport.port or --port')
  if (config.auth.ticket_key_rotation !== null) {
    throw new RangeError('workers cannot be combined with auth.ticket_key_rotation (its keys live in one process); leave it null or set auth.ticket_key')
  }
  if (config.keys.agent && config.auth.ticket_key === null) {
    throw new RangeError('workers with keys.agent need auth.ticket_key: a server key in the ssh-agent gives no ticket key the processes could share')
  }
  return workers
}

/** True in a process forked by {@link runPrimary}. */
export function isClusterWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] === '1'
}

/**
 * The replay store a worker uses: the primary's memory over IPC, or undefined when the config
 * names Redis (the worker then connects to Redis itself) or this is not a worker.
 */
export function workerReplayStore(config: Config): IpcNonceStore | undefined {
  if (!isClusterWorker() || config.auth.nonce_store.type !== 'memory') return undefined
  const epoch = process.env[EPOCH_ENV]
  if (epoch === undefined) throw new Error('this worker was started without the replay epoch of its primary')
  return new IpcNonceStore({ channel: process as unknown as IpcChannel, epoch })
}

/** Worker side: label every response with this worker's id. */
export function labelResponses(server: http.Server): void {
  const id = String(cluster.worker?.id ?? 0)
  server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => res.setHeader(WORKER_HEADER, id))
}

/** Worker side: tell the primary this worker listens, with the banner one process would print. */
export function reportReady(banner: string): void {
  process.send?.({ [READY]: banner })
}

/** Worker side: `stop` runs once when the primary asks this worker to finish. */
export function onPrimaryStop(stop: (signal: NodeJS.Signals) => void): void {
  process.on('message', (m: unknown) => {
    if (typeof m === 'object' && m !== null && typeof (m as Record<string, unknown>)[STOP] === 'string') stop((m as Record<string, NodeJS.Signals>)[STOP]!)
  })
}

export interface RunPrimaryOptions {
  config: Config
  workers: number
  /** A diagnostic line for stderr (worker started, died, replaced). */
  log(line: string): void
  /** The banner, once every first worker listens (default: the first worker's, to stdout). */
  onReady?(banner: string, pids: readonly number[]): void
}

/**
 * Runs the primary until SIGTERM/SIGINT and every worker has exited. Rejects if a worker exits
 * before it ever listened (bad config, port taken): restarting it would only fail again.
 */
export async function runPrimary(opts: RunPrimaryOptions): Promise<void> {
  const { config, workers, log } = opts
  const store: NonceStore | undefined =
    config.auth.nonce_store.type === 'memory'
      ? new InMemoryNonceStore({ maxEntries: config.auth.nonce_cache_size, maxSessions: config.auth.replay_window_sessions })
      : undefined
  const env: Record<string, string> = { [WORKER_ENV]: '1', ...(store ? { [EPOCH_ENV]: store.epoch() } : {}) }
  const ready = new Set<number>()
  let banner: string | undefined
  let announced = false
  let stopping = false
  let failure: Error | undefined
  let finish: () => void = () => undefined
  const finished = new Promise<void>((resolve) => (finish = resolve))

  const fork = (): Worker => {
    const w = cluster.fork(env)
    const peer = { send: (x: unknown) => w.send(x as never), isConnected: () => w.isConnected() }
    w.on('message', (m: unknown) => {
      if (store && answerNonceQuestion(store, peer, m)) return
      if (typeof m === 'object' && m !== null && typeof (m as Record<string, unknown>)[READY] === 'string') {
        ready.add(w.id)
        log(`worker ${w.id} (pid ${w.process.pid}) listening`)
        banner ??= (m as Record<string, string>)[READY]
        if (!announced && ready.size >= workers) {
          announced = true
          const pids = Object.values(cluster.workers ?? {}).map((x) => x?.process.pid ?? 0)
          ;(opts.onReady ?? ((b) => process.stdout.write(b)))(banner!, pids)
        }
      }
    })
    return w
  }

  const stopAll = (signal: NodeJS.Signals): void => {
    for (const w of Object.values(cluster.workers ?? {})) if (w?.isConnected()) w.send({ [STOP]: signal })
    if (Object.keys(cluster.workers ?? {}).length === 0) finish()
  }

  cluster.on('exit', (w, code, signal) => {
    const how = signal ? `signal ${signal}` : `code ${code}`
    const wasReady = ready.delete(w.id)
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) finish()
      return
    }
    if (!wasReady) {
      failure = new Error(`worker ${w.id} (pid ${w.process.pid}) exited (${how}) before it could serve; see its error above`)
      stopping = true
      stopAll('SIGTERM')
      return
    }
    const next = fork()
    log(`worker ${w.id} (pid ${w.process.pid}) exited (${how}); started worker ${next.id} (pid ${next.process.pid}) in its place`)
  })

  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log(`${signal} again: exiting now`)
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL')
      process.exit(1)
    }
    stopping = true
    log(`${signal}: asking ${Object.keys(cluster.workers ?? {}).length} workers to finish`)
    stopAll(signal)
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)

  log(`starting ${workers} workers; replay memory: ${config.auth.nonce_store.type === 'memory' ? 'in this primary process, shared over IPC' : 'Redis'}`)
  for (let i = 0; i < workers; i++) fork()
  await finished
  process.off('SIGTERM', onSignal)
  process.off('SIGINT', onSignal)
  void store?.close?.()
  if (failure) throw failure
}
