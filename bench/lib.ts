/**
 * Shared helpers for the benchmark scripts: statistics over repeated runs, a timing loop, IPC
 * between the orchestrator and its workers, and table formatting. No project code here.
 * @module
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** A figure measured several times: the median and the spread. */
export interface Stat {
  median: number
  min: number
  max: number
  /** Interquartile range (q1, q3). */
  q1: number
  q3: number
  runs: number[]
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  const pos = (sorted.length - 1) * q
  const lo = Math.floor(pos)
  const hi = Math.ceil(pos)
  const a = sorted[lo]!
  const b = sorted[hi]!
  return a + (b - a) * (pos - lo)
}

export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5)
}

export function statOf(values: readonly number[]): Stat {
  const sorted = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  return {
    median: quantile(sorted, 0.5),
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
    runs: values.map((v) => round(v, 4)),
  }
}

export function round(v: number, digits = 3): number {
  if (!Number.isFinite(v)) return v
  const f = 10 ** digits
  return Math.round(v * f) / f
}

/** Percentiles of latency samples (ms). */
export function latencySummary(samplesMs: readonly number[]): { p50: number; p90: number; p99: number; max: number; n: number } {
  const s = [...samplesMs].sort((a, b) => a - b)
  return { p50: quantile(s, 0.5), p90: quantile(s, 0.9), p99: quantile(s, 0.99), max: s[s.length - 1] ?? Number.NaN, n: s.length }
}

/**
 * Microseconds per call of `fn`, measured over `iterations` calls after `warmup` calls; repeated
 * `runs` times. Synchronous work only.
 */
export function timeSync(fn: (i: number) => unknown, iterations: number, runs: number, warmup = Math.min(iterations, 200)): Stat {
  for (let i = 0; i < warmup; i++) fn(i)
  const results: number[] = []
  let sink: unknown
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) sink = fn(i)
    const t1 = process.hrtime.bigint()
    results.push(Number(t1 - t0) / 1000 / iterations)
  }
  keep(sink)
  return statOf(results)
}

/** Same as {@link timeSync} for functions returning promises (awaited one at a time). */
export async function timeAsync(fn: (i: number) => Promise<unknown>, iterations: number, runs: number, warmup = Math.min(iterations, 200)): Promise<Stat> {
  for (let i = 0; i < warmup; i++) await fn(i)
  const results: number[] = []
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) await fn(r * iterations + i + warmup)
    const t1 = process.hrtime.bigint()
    results.push(Number(t1 - t0) / 1000 / iterations)
  }
  return statOf(results)
}

let sinkHole: unknown
/** Keeps a value alive so the optimizer cannot drop the work that made it. */
export function keep(v: unknown): void {
  sinkHole = v
  if (sinkHole === Symbol.for('never')) process.stdout.write('')
}

/** CPU microseconds (user + system) of this process. */
export function cpuMicros(): number {
  const u = process.cpuUsage()
  return u.user + u.system
}

// ---------- IPC ----------

export type Message = { id?: number; cmd?: string; type?: string; [k: string]: unknown }

/**
 * How a bench file starts another: through tsx when it runs as TypeScript (`npm run bench`), with
 * plain node when it runs as the transpiled JavaScript of .test-tree (the test suite's smoke runs,
 * scripts/build-test-tree.mjs), where loading tsx in every child would cost ~0.5 s of CPU each.
 */
const RUNNING_AS_JS = import.meta.url.endsWith('.js')
export const TS_LOADER: readonly string[] = RUNNING_AS_JS ? [] : ['--import', 'tsx']
/** A bench file's name as this tree has it: `x.ts`, or `x.js` when transpiled. */
export function benchFile(name: string): string {
  return RUNNING_AS_JS ? name.replace(/\.ts$/, '.js') : name
}

/** A forked worker (a bench file, see TS_LOADER) with request/response over IPC. */
export class Worker {
  readonly child: ChildProcess
  #next = 1
  readonly #pending = new Map<number, { resolve: (m: Message) => void; reject: (e: Error) => void }>()
  readonly #ready: Promise<Message>
  #exited = false
  stderr = ''
  /** Messages that are neither replies nor `ready` (progress events). */
  onEvent: ((m: Message) => void) | undefined

  constructor(script: string, args: string[] = [], execArgv: string[] = []) {
    const path = fileURLToPath(new URL(benchFile(script), import.meta.url))
    this.child = fork(path, args, { execArgv: [...TS_LOADER, ...execArgv], stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString()
      if (process.env.BENCH_DEBUG) process.stderr.write(d)
      if (this.stderr.length > 20_000) this.stderr = this.stderr.slice(-10_000)
    })
    this.#ready = new Promise((resolve, reject) => {
      const onMessage = (m: Message): void => {
        if (m.type === 'ready') resolve(m)
        else if (m.type === 'error' && m.id === undefined) reject(new Error(`${script}: ${String(m.message)}`))
      }
      this.child.on('message', onMessage)
      this.child.once('exit', (code) => {
        this.#exited = true
        const err = new Error(`${script} exited with ${code}: ${this.stderr.slice(-2000)}`)
        reject(err)
        for (const p of this.#pending.values()) p.reject(err)
        this.#pending.clear()
      })
    })
    this.child.on('message', (m: Message) => {
      if (m.type !== 'result' && m.type !== 'error') {
        this.onEvent?.(m)
        return
      }
      if (typeof m.id !== 'number') return
      const p = this.#pending.get(m.id)
      if (p === undefined) return
      this.#pending.delete(m.id)
      if (m.type === 'error') p.reject(new Error(`${script}: ${String(m.message)}`))
      else p.resolve(m)
    })
  }

  ready(): Promise<Message> {
    return this.#ready
  }

  request(cmd: string, payload: Record<string, unknown> = {}): Promise<Message> {
    if (this.#exited) return Promise.reject(new Error('worker has exited'))
    const id = this.#next++
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.child.send({ ...payload, id, cmd })
    })
  }

  async stop(): Promise<void> {
    if (this.#exited) return
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()))
    // disconnecting lets the worker exit normally (so --cpu-prof is written); then signals
    if (this.child.connected) this.child.disconnect()
    const term = setTimeout(() => this.child.kill('SIGTERM'), 3000)
    const kill = setTimeout(() => this.child.kill('SIGKILL'), 6000)
    await exited
    clearTimeout(term)
    clearTimeout(kill)
  }
}

/** Worker side: answers requests from the orchestrator. Handlers return the reply fields. */
export function serve(handlers: Record<string, (m: Message) => Promise<Record<string, unknown>> | Record<string, unknown>>, ready: Record<string, unknown> = {}): void {
  const send = (m: Message): void => {
    process.send?.(m)
  }
  process.on('message', (m: Message) => {
    const h = m.cmd === undefined ? undefined : handlers[m.cmd]
    if (h === undefined) {
      send({ id: m.id, type: 'error', message: `unknown command ${String(m.cmd)}` })
      return
    }
    Promise.resolve()
      .then(() => h(m))
      .then(
        (r) => send({ ...r, id: m.id, type: 'result' }),
        (e: unknown) => send({ id: m.id, type: 'error', message: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
      )
  })
  process.on('disconnect', () => process.exit(0))
  send({ ...ready, type: 'ready' })
}

// ---------- formatting ----------

export function fmt(v: number | undefined, digits = 1): string {
  if (v === undefined || !Number.isFinite(v)) return '—'
  if (Math.abs(v) >= 10_000) return Math.round(v).toLocaleString('en-US')
  return v.toFixed(digits)
}

/** "median [min–max]" */
export function fmtStat(s: Stat | undefined, digits = 1): string {
  if (s === undefined) return '—'
  return `${fmt(s.median, digits)} [${fmt(s.min, digits)}–${fmt(s.max, digits)}]`
}

export function table(title: string, header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |'
  const sep = '|' + widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':')).join('|') + '|'
  return [`\n### ${title}\n`, line(header), sep, ...rows.map(line)].join('\n') + '\n'
}

/** Forks `script` (a bench file, see TS_LOADER) with `args` and an IPC channel; output inherited. */
export function forkBench(script: string, args: string[]): ChildProcess {
  return fork(script, args, { execArgv: [...TS_LOADER], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
}

/** The first IPC message of `p` that `pred` accepts; rejects if `p` exits first. */
export function nextMessage<T>(p: ChildProcess, pred: (m: T) => boolean): Promise<T> {
  return new Promise((resolve, reject) => {
    const on = (m: T): void => {
      if (pred(m)) {
        p.off('message', on)
        resolve(m)
      }
    }
    p.on('message', on)
    p.once('exit', (code) => reject(new Error(`child exited with ${code}`)))
  })
}
