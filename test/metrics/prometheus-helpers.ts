/**
 * A real Prometheus for tests: the `prometheus` binary (Debian package; `.ci/run` installs it)
 * in its own temp dir on a free loopback port, scraping the given targets every second.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../integration/redis-helpers.js'

export interface RunningPrometheus {
  url: string
  /** Value of an instant vector query (first sample), or undefined when it has no sample yet. */
  query(expr: string): Promise<number | undefined>
  /** Polls `expr` until `want(value)` holds; returns the last value (throws after `timeoutMs`). */
  waitFor(expr: string, want: (v: number | undefined) => boolean, timeoutMs?: number): Promise<number | undefined>
  stop(): Promise<void>
}

export async function startPrometheus(targets: string[]): Promise<RunningPrometheus> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-prometheus-'))
  const port = await freePort()
  const config = [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: mcp_pki',
    '    scrape_interval: 1s',
    '    scrape_timeout: 1s',
    '    static_configs:',
    `      - targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]`,
    '',
  ].join('\n')
  await writeFile(join(dir, 'prometheus.yml'), config)
  const proc: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)))
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const url = `http://127.0.0.1:${port}`
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
    await exited
    await rm(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + 30_000
  for (;;) {
    if (proc.exitCode !== null) {
      await stop()
      throw new Error(`prometheus exited: ${stderr}`)
    }
    const ok = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)
    if (ok) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`prometheus not ready within 30 s: ${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const query = async (expr: string): Promise<number | undefined> => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`)
    const body = (await res.json()) as { status: string; data?: { result: { value: [number, string] }[] }; error?: string }
    if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error ?? res.status}`)
    const first = body.data?.result[0]
    return first === undefined ? undefined : Number(first.value[1])
  }
  return {
    url,
    query,
    async waitFor(expr, want, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs
      let last: number | undefined
      for (;;) {
        last = await query(expr)
        if (want(last)) return last
        if (Date.now() > end) throw new Error(`${expr} stayed ${last} for ${timeoutMs} ms`)
        await new Promise((r) => setTimeout(r, 250))
      }
    },
    stop,
  }
}

/** `promtool check metrics` on an exposition: its exit status and what it printed. */
export function promtoolCheckMetrics(exposition: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' })
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

/** The PromQL expressions of the Grafana dashboard in docs/. */
export async function dashboardExpressions(): Promise<string[]> {
  const file = new URL('../../docs/grafana/mcp-pki-auth-dashboard.json', import.meta.url)
  const dash = JSON.parse(await readFile(file, 'utf8')) as { panels: { targets?: { expr: string }[] }[] }
  return dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
}
