#!/usr/bin/env node
/**
 * mcp-pki-server — serve the mutual handshake as the config says, until stopped.
 *
 *   mcp-pki-server --config server_config.yml
 *
 * One port serves `POST /auth`, `GET /health`, `GET /ready` and the WebSocket endpoint `/ws`;
 * `--metrics-port` (or `metrics.enabled`) adds `GET /metrics` on its own listener. `transport.type`
 * https or wss turns TLS on (`transport.ssl`). Every audit event is one line on stderr (the JSON
 * line itself when `audit.log_file` is null, else a short summary while the JSON goes to the file).
 * SIGTERM / SIGINT: stop accepting, finish what is in flight, close the stores, exit 0.
 *
 * `--workers N` (or `transport.workers`, `MCP_WORKERS`; `auto` = one per core) serves the port
 * from N processes sharing one replay memory and the allowlist (../server/cluster.ts).
 * @module
 */
import { Command } from 'commander'
import { AuditLogger, type AuditLevel } from '../audit/audit-logger.js'
import { loadConfigFile } from '../config/load-config.js'
import { isClusterWorker, labelResponses, onPrimaryStop, reportReady, runPrimary, workerReplayStore } from '../server/cluster.js'
import { prepareServerFiles } from '../server/from-config.js'
import { startServerFromConfig } from '../server/start-server.js'
import { printable, terminalSafeJson } from '../internal/text.js'
import { PACKAGE_VERSION } from '../transport/http-server.js'
import { audienceLine } from './shared/audience-line.js'
import { configureProgram, runCli, UsageError, warn } from './shared/output.js'
import { workersOrUsage } from './shared/workers.js'

interface ServerCliOptions {
  config?: string
  host?: string
  port?: string
  workers?: string
  metricsPort?: string
}

function buildProgram(): Command {
  return new Command('mcp-pki-server')
    .description('Serve mcp-pki-auth mutual authentication (POST /auth, GET /health, WebSocket /ws) as the config file says.')
    .option('--config <file>', 'server configuration file (YAML)')
    .option('--host <host>', 'listen on this address instead of transport.host')
    .option('--port <port>', 'listen on this port instead of transport.port (0 = any free port)')
    .option('--workers <n>', 'serve the port from n processes (default transport.workers, 1); "auto" = one per core')
    .option('--metrics-port <port>', 'serve Prometheus GET /metrics on metrics.host at this port (turns metrics on; never the public port)')
    .version(PACKAGE_VERSION)
}

const SKIP = new Set(['ts', 'event', 'level'])

/** One readable line for an audit event (no secret fields: the logger's redaction applies to the file). */
function summaryLine(event: string, fields: Readonly<Record<string, unknown>>, level: AuditLevel): string {
  const parts = [new Date().toISOString(), level.padEnd(5), event]
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === null || SKIP.has(k)) continue
    if (/token|secret|key$|signature|proof|mac/i.test(k) && !/fingerprint/i.test(k)) continue
    // Strings with spaces or anything a terminal acts on are quoted; escapes keep C1 controls and the like inert.
    const text = typeof v === 'string' && !/\s/.test(v) && printable(v) === v ? v : terminalSafeJson(JSON.stringify(v) ?? 'null')
    parts.push(`${printable(k)}=${text}`)
  }
  return parts.join(' ')
}

function portOption(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const port = Number(value)
  if (!/^\d+$/.test(value) || !Number.isInteger(port) || port > 65535) throw new UsageError(`${flag} must be 0..65535, got "${value}"`)
  return port
}

async function main(): Promise<void> {
  const program = configureProgram(buildProgram())
  program.parse(process.argv)
  const opts = program.opts<ServerCliOptions>()
  if (!opts.config) throw new UsageError('--config <file> is required', 'e.g. mcp-pki-server --config server_config.yml')
  const port = portOption(opts.port, '--port')
  const metricsPort = portOption(opts.metricsPort, '--metrics-port')
  const { config, warnings } = await loadConfigFile(opts.config)
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === (port ?? config.transport.port)) {
    throw new UsageError(`--metrics-port must differ from the public port ${metricsPort}: metrics are never served on the public port`)
  }
  const workers = workersOrUsage(opts.workers, config, port ?? config.transport.port)
  if (workers > 1 && (metricsPort !== undefined || config.metrics.enabled)) {
    throw new UsageError('metrics are served by a single process for now: run with --workers 1, or turn metrics off (each worker would need its own listener)')
  }
  if (workers > 1 && !isClusterWorker()) {
    for (const w of warnings) warn(w)
    await prepareServerFiles(config)
    await runPrimary({ config, workers, log: (line) => process.stderr.write(`mcp-pki-server: ${line}\n`) })
    return
  }
  if (!isClusterWorker()) for (const w of warnings) warn(w)
  const replayStore = workerReplayStore(config)

  // With no log file, the JSON lines themselves go to stderr; otherwise to the file plus a summary here.
  const toStderr = config.audit.log_file === null
  const audit = AuditLogger.fromConfig(config.audit, toStderr ? { stream: process.stderr } : {})
  const server = await startServerFromConfig(config, {
    audit,
    ...(toStderr ? {} : { onEvent: (event, fields, level) => { if (audit.isEnabled(event, level)) process.stderr.write(summaryLine(event, fields, level) + '\n') } }),
    ...(opts.host === undefined ? {} : { host: opts.host }),
    ...(port === undefined ? {} : { port }),
    ...(replayStore ? { replayStore } : {}),
    ...(metricsPort === undefined ? {} : { metricsPort }),
  }).catch(async (err: unknown) => {
    replayStore?.close()
    await audit.close()
    throw err
  })
  if (isClusterWorker()) labelResponses(server.http.server)
  const events = server.configured.events
  const t = config.transport
  events.log('server.start', { server_fingerprint: server.fingerprint, url: server.authUrl, ws_url: server.wsUrl, transport: t.type, allowlist_entries: server.configured.allowlist.size, nonce_store: config.auth.nonce_store.type, session_binding: config.auth.session_binding })
  const aud = config.auth.audience
  process.stderr.write(audienceLine(aud, server.authUrl, server.address.port))
  // Signal handlers first, then the 'listening' line: a supervisor that signals as soon as it
  // reads that line must get a clean shutdown.
  const done = new Promise<void>((resolve) => {
    let stopping = false
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        process.stderr.write(`${signal} again: exiting now\n`)
        process.exit(1)
      }
      stopping = true
      process.stderr.write(`${signal}: shutting down\n`)
      events.log('server.stop', { signal, server_fingerprint: server.fingerprint })
      server
        .close()
        .then(() => audit.close())
        .then(resolve, (err: unknown) => {
          process.stderr.write(`error while shutting down: ${(err as Error).message}\n`)
          resolve()
        })
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    // A worker also stops when its primary asks (a signal the whole process group got counts once).
    if (isClusterWorker()) onPrimaryStop((signal) => { if (!stopping) stop(signal) })
  })
  const banner =
    `mcp-pki-server ${PACKAGE_VERSION} listening on ${server.authUrl} (POST /auth, GET /health, GET /ready) and ${server.wsUrl}\n` +
    `server key fingerprint: ${server.fingerprint}\n` +
    `allowlist: ${config.acl.allowlist_path} (${server.configured.allowlist.size} client keys)\n` +
    (server.metrics ? `metrics: ${server.metrics.url}\n` : '')
  if (isClusterWorker()) reportReady(banner)
  else process.stdout.write(banner)

  await done
  // The IPC channel to the primary would keep a worker alive.
  if (isClusterWorker()) process.disconnect?.()
}

await runCli(main)
