#!/usr/bin/env node
/**
 * mcp-auth-test — run the mutual handshake against a server and report what happened.
 *
 *   mcp-auth-test --config client_config.yml --server-url https://localhost:8443/auth --timeout 10
 *   mcp-auth-test --config client_config.yml --server-url wss://localhost:8443/ws --transport websocket
 *   mcp-auth-test --config client_config.yml --server-url http://127.0.0.1:8443/auth --count 100 --concurrent 10
 *
 * One run prints who the server is (fingerprint, allowlist metadata) and the session expiry. A load
 * run (--count > 1) shows a progress bar on a terminal, then successes, failures by code,
 * handshakes/s, p50/p90/p99/max latency and a latency histogram. Exit 1 when any handshake failed,
 * with an actionable hint per failure code.
 * @module
 */
import { Command, Option } from 'commander'
import { loadConfigFile } from '../config/load-config.js'
import type { Config } from '../config/types.js'
import { AuthError, isAuthError } from '../errors.js'
import type { ClientSession } from '../handshake/client-handshake.js'
import { authenticate, clientSetupFromConfig, safeUrl, type ClientSetup, type FetchLike } from '../transport/http-client.js'
import { clientKeyOptions } from '../transport/client-key.js'
import { createNodeFetch, tlsClientOptions, tlsClientSettingsFromConfig, type TlsClientOptions } from '../transport/tls.js'
import { authenticateWebSocket } from '../transport/ws-client.js'
import { hintFor } from './shared/hints.js'
import { configureProgram, printJson, printLine, runCli, UsageError } from './shared/output.js'
import { printableLines } from '../internal/text.js'

type Transport = 'http' | 'websocket'

interface AuthTestOptions {
  config?: string
  serverUrl?: string
  timeout?: string
  transport?: Transport
  count: string
  concurrent: string
  format: 'text' | 'json'
}

function buildProgram(): Command {
  return new Command('mcp-auth-test')
    .description('Run the mcp-pki-auth mutual handshake against a server: one run shows who the server is; --count runs a load test.')
    .option('--config <file>', 'client configuration file (YAML)')
    .option('--server-url <url>', 'handshake endpoint: http(s)://host:port/auth or ws(s)://host:port/ws (default: the only entry under servers:)')
    .option('--timeout <seconds>', 'seconds per handshake (default: transport.timeout)')
    .addOption(new Option('--transport <transport>', 'http or websocket (default: from the URL scheme)').choices(['http', 'websocket']))
    .option('--count <n>', 'handshakes to run', '1')
    .option('--concurrent <n>', 'handshakes in flight at once', '1')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
}

function positiveInt(text: string, flag: string, max: number): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} must be an integer from 1 to ${max}, got "${text}"`)
  return n
}

/** The URL to use for the chosen transport (an /auth URL becomes /ws for websocket and back). */
function urlFor(url: string, transport: Transport): string {
  const u = new URL(url)
  const secure = u.protocol === 'https:' || u.protocol === 'wss:'
  if (transport === 'websocket') {
    if (u.protocol === 'http:' || u.protocol === 'https:') u.protocol = secure ? 'wss:' : 'ws:'
    if (u.pathname === '/auth' || u.pathname === '/') u.pathname = '/ws'
  } else {
    if (u.protocol === 'ws:' || u.protocol === 'wss:') u.protocol = secure ? 'https:' : 'http:'
    if (u.pathname === '/ws' || u.pathname === '/') u.pathname = '/auth'
  }
  return u.toString()
}

interface Runner {
  transport: Transport
  url: string
  run(): Promise<ClientSession>
}

async function makeRunner(config: Config, setup: ClientSetup, url: string, transport: Transport, timeoutMs: number): Promise<Runner> {
  const tlsSettings = tlsClientSettingsFromConfig(config)
  const needsTls = (url.startsWith('https:') || url.startsWith('wss:')) && (tlsSettings.caFile || tlsSettings.certFile)
  if (transport === 'websocket') {
    const tls: TlsClientOptions | undefined = needsTls ? await tlsClientOptions(tlsSettings) : undefined
    return {
      transport,
      url,
      async run() {
        const { session, socket } = await authenticateWebSocket({
          url,
          ...clientKeyOptions(setup),
          serverTrust: setup.serverTrust,
          audience: setup.audience,
          timeoutMs,
          timestampTolerance: config.auth.timestamp_tolerance,
          ...(tls ? { tls } : {}),
        })
        socket.close(1000, 'done')
        return session
      },
    }
  }
  const doFetch: FetchLike | undefined = needsTls ? await createNodeFetch({ ...tlsSettings, maxSockets: 64 }) : undefined
  return {
    transport,
    url,
    run: () =>
      authenticate({
        url,
        ...clientKeyOptions(setup),
        serverTrust: setup.serverTrust,
        audience: setup.audience,
        timeoutMs,
        retryAttempts: 0,
        timestampTolerance: config.auth.timestamp_tolerance,
        ...(doFetch ? { fetch: doFetch } : {}),
      }),
  }
}

function errorCode(err: unknown): string {
  return isAuthError(err) ? err.code : 'internal_error'
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]!
}

function formatDuration(ms: number): string {
  if (ms < 0) return 'already expired'
  const s = Math.round(ms / 1000)
  const m = Math.floor(s / 60)
  const h = Math.floor(m / 60)
  if (h > 0) return `${h}h ${m % 60}m`
  if (m > 0) return `${m}m ${s % 60}s`
  return `${s}s`
}

/** A small text histogram over logarithmic buckets. */
function histogram(sorted: readonly number[], width = 40): string[] {
  if (sorted.length === 0) return []
  const min = Math.max(sorted[0]!, 0.001)
  const max = Math.max(sorted[sorted.length - 1]!, min * 1.0001)
  const buckets = Math.min(8, Math.max(1, sorted.length))
  const ratio = Math.pow(max / min, 1 / buckets)
  const edges = Array.from({ length: buckets + 1 }, (_, i) => min * Math.pow(ratio, i))
  const counts = new Array<number>(buckets).fill(0)
  for (const v of sorted) {
    let b = Math.floor(Math.log(Math.max(v, min) / min) / Math.log(ratio))
    if (!Number.isFinite(b) || b < 0) b = 0
    if (b >= buckets) b = buckets - 1
    counts[b]!++
  }
  const peak = Math.max(...counts)
  return counts.map((c, i) => {
    const label = `${edges[i]!.toFixed(2).padStart(9)} – ${edges[i + 1]!.toFixed(2).padEnd(9)} ms`
    const bar = '█'.repeat(peak === 0 ? 0 : Math.round((c / peak) * width))
    return `  ${label} │${bar} ${c}`
  })
}

function progress(done: number, total: number, failed: number): void {
  const width = 30
  const filled = Math.round((done / total) * width)
  process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${failed ? ` (${failed} failed)` : ''}`)
}

async function main(): Promise<void> {
  const program = configureProgram(buildProgram())
  program.parse(process.argv)
  const opts = program.opts<AuthTestOptions>()
  if (!opts.config) throw new UsageError('--config <file> is required', 'e.g. mcp-auth-test --config client_config.yml --server-url http://127.0.0.1:8443/auth')
  const count = positiveInt(opts.count, '--count', 1_000_000)
  const concurrent = Math.min(positiveInt(opts.concurrent, '--concurrent', 1000), count)
  const { config } = await loadConfigFile(opts.config)
  let serverUrl = opts.serverUrl
  if (serverUrl === undefined) {
    const entries = Object.values(config.servers)
    if (entries.length !== 1) throw new UsageError('--server-url is required (the config does not name exactly one server under servers:)')
    serverUrl = entries[0]!.url
  }
  let parsed: URL
  try {
    parsed = new URL(serverUrl)
  } catch {
    throw new UsageError(`--server-url must be an absolute URL, got "${serverUrl}"`)
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(parsed.protocol)) throw new UsageError('--server-url must be http(s):// or ws(s)://')
  const transport: Transport = opts.transport ?? (parsed.protocol === 'ws:' || parsed.protocol === 'wss:' ? 'websocket' : 'http')
  const url = urlFor(serverUrl, transport)
  let timeoutMs = config.transport.timeout * 1000
  if (opts.timeout !== undefined) {
    const t = Number(opts.timeout)
    if (!Number.isFinite(t) || t <= 0) throw new UsageError(`--timeout must be a positive number of seconds, got "${opts.timeout}"`)
    timeoutMs = t * 1000
  }
  const hintCtx = { config: opts.config, publicKeyPath: config.keys.public_key_path, url }

  const setup = await clientSetupFromConfig(config, url, { configFile: opts.config })
  const runner = await makeRunner(config, setup, url, transport, timeoutMs)

  if (count === 1) {
    const started = performance.now()
    try {
      const session = await runner.run()
      const ms = performance.now() - started
      const report = {
        success: true,
        transport,
        url: safeUrl(url),
        latency_ms: round(ms),
        server: { fingerprint: session.serverFingerprint, metadata: session.serverMetadata ?? null, pinned: setup.serverEntry?.fingerprint != null },
        client: { fingerprint: session.clientFingerprint },
        session: { expires_at: new Date(session.expiresAt).toISOString(), expires_in_s: Math.round((session.expiresAt - Date.now()) / 1000) },
      }
      if (opts.format === 'json') {
        printJson(report)
        return
      }
      printLine(`✓ mutual authentication succeeded over ${transport} in ${report.latency_ms.toFixed(2)} ms`)
      printLine(`  server:      ${report.url}`)
      printLine(`  server key:  ${session.serverFingerprint}${report.server.pinned ? ' (pinned in config)' : ''}`)
      printLine(`  server info: ${session.serverMetadata && Object.keys(session.serverMetadata).length > 0 ? JSON.stringify(session.serverMetadata) : '(no allowlist metadata)'}`)
      printLine(`  client key:  ${session.clientFingerprint}`)
      printLine(`  session:     expires ${report.session.expires_at} (in ${formatDuration(session.expiresAt - Date.now())})`)
      return
    } catch (err) {
      const code = errorCode(err)
      const hint = hintFor(err, hintCtx)
      if (opts.format === 'json') {
        printJson({ success: false, transport, url: safeUrl(url), error: { code, message: (err as Error).message }, hint: hint ?? null })
      } else {
        printLine(`✗ mutual authentication failed over ${transport}: ${code}`)
        process.stderr.write(`error: ${printableLines((err as Error).message)}\n`)
        if (hint) process.stderr.write(`hint: ${printableLines(hint)}\n`)
      }
      process.exitCode = 1
      return
    }
  }

  // Load run.
  const latencies: number[] = []
  const failures = new Map<string, { count: number; example: unknown }>()
  let done = 0
  let next = 0
  const showProgress = process.stderr.isTTY === true && opts.format === 'text'
  const startedAll = performance.now()
  let lastDraw = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++
      const t0 = performance.now()
      try {
        await runner.run()
        latencies.push(performance.now() - t0)
      } catch (err) {
        const code = errorCode(err)
        const f = failures.get(code)
        if (f) f.count++
        else failures.set(code, { count: 1, example: err })
      }
      done++
      if (showProgress && (performance.now() - lastDraw > 50 || done === count)) {
        lastDraw = performance.now()
        progress(done, count, done - latencies.length)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrent }, () => worker()))
  const wallMs = performance.now() - startedAll
  if (showProgress) process.stderr.write('\n')
  const sorted = [...latencies].sort((a, b) => a - b)
  const failed = count - latencies.length
  const stats = {
    success: failed === 0,
    transport,
    url: safeUrl(url),
    count,
    concurrent,
    successes: latencies.length,
    failures: failed,
    failures_by_code: Object.fromEntries([...failures].map(([code, f]) => [code, f.count])),
    duration_s: round(wallMs / 1000),
    handshakes_per_second: Math.round((latencies.length / (wallMs / 1000)) * 10) / 10,
    latency_ms: {
      min: round(sorted[0] ?? 0),
      p50: round(percentile(sorted, 50)),
      p90: round(percentile(sorted, 90)),
      p99: round(percentile(sorted, 99)),
      max: round(sorted[sorted.length - 1] ?? 0),
      mean: round(sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : 0),
    },
    hints: Object.fromEntries([...failures].map(([code, f]) => [code, hintFor(f.example, hintCtx) ?? null])),
  }
  if (opts.format === 'json') {
    printJson(stats)
  } else {
    printLine(`${transport} handshakes against ${stats.url}: ${count} total, ${concurrent} concurrent, ${stats.duration_s.toFixed(2)} s`)
    printLine(`  succeeded:   ${stats.successes}`)
    printLine(`  failed:      ${stats.failures}`)
    for (const [code, f] of failures) {
      printLine(`    ${code}: ${f.count}  (${(f.example as Error).message})`)
      const hint = hintFor(f.example, hintCtx)
      if (hint) printLine(`      hint: ${hint}`)
    }
    printLine(`  throughput:  ${stats.handshakes_per_second} handshakes/s`)
    const l = stats.latency_ms
    printLine(`  latency ms:  p50 ${l.p50.toFixed(2)}  p90 ${l.p90.toFixed(2)}  p99 ${l.p99.toFixed(2)}  max ${l.max.toFixed(2)}  (min ${l.min.toFixed(2)}, mean ${l.mean.toFixed(2)})`)
    if (sorted.length > 0) {
      printLine('  histogram:')
      for (const line of histogram(sorted)) printLine(line)
    }
  }
  if (failed > 0) process.exitCode = 1
}

await runCli(async () => {
  try {
    await main()
  } catch (err) {
    if (err instanceof AuthError) {
      const hint = hintFor(err, { config: '<client config>', publicKeyPath: '<client public key>', url: '' })
      if (hint && err.code !== 'transport_error') Object.assign(err, { hint })
    }
    throw err
  }
})
