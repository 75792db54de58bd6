#!/usr/bin/env node
/**
 * mcp-pki-gateway — mutual authentication in front of an MCP server you did not write.
 *
 *   mcp-pki-gateway --config server_config.yml --upstream http://127.0.0.1:3000/mcp
 *   mcp-pki-gateway --config server_config.yml --upstream-command "node server.js"
 *
 * Serves the handshake at /auth, an authenticated MCP endpoint at /mcp, /health and /ready, on the
 * config's transport.host/port (or --listen); `--metrics-port` (or `metrics.enabled`) adds
 * Prometheus `GET /metrics` on a listener of its own (metrics.host, default 127.0.0.1). The upstream learns the caller from
 * X-MCP-PKI-Fingerprint / X-MCP-PKI-Role / X-MCP-PKI-Org (HTTP) or MCP_PKI_FINGERPRINT /
 * MCP_PKI_ROLE / MCP_PKI_ORG in its environment (stdio, one process per MCP session).
 *
 * `--workers N` (or `transport.workers`, `MCP_WORKERS`) serves the port from N processes sharing
 * one replay memory (../server/cluster.ts); it needs an HTTP upstream, since a stdio upstream's
 * MCP sessions live in the one process that started them.
 * @module
 */
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import process from 'node:process'
import { Command } from 'commander'
import { loadConfig } from '../config/load-config.js'
import type { Config } from '../config/types.js'
import { randomBytes } from 'node:crypto'
import { privateKeySeed } from '../keys/key-pair.js'
import type { ServerKey } from '../handshake/server-key.js'
import { createMcpGateway, splitCommand, type Upstream } from '../mcp/gateway.js'
import { createMcpAuth } from '../mcp/server.js'
import { isClusterWorker, labelResponses, onPrimaryStop, reportReady, runPrimary, workerReplayStore } from '../server/cluster.js'
import { createAuthServiceFromConfig, prepareServerFiles } from '../server/from-config.js'
import { hardenHttpServer, httpServerOptions } from '../transport/connection-guard.js'
import { startPolicyFromConfig } from '../authz/policy-from-config.js'
import { createAuthMetrics } from '../metrics/auth-metrics.js'
import { addGatewayMetrics } from '../metrics/gateway-metrics.js'
import { serveMetrics, type MetricsServer } from '../metrics/metrics-server.js'
import { tlsServerOptions } from '../transport/tls.js'
import { configureProgram, runCli, UsageError } from './shared/output.js'
import { printableLines } from '../internal/text.js'
import { workersOrUsage } from './shared/workers.js'

interface GatewayCliOptions {
  config: string
  upstream?: string
  upstreamCommand?: string
  listen?: string
  mcpPath: string
  authPath: string
  maxSessions: string
  idleTimeout: string
  quiet?: boolean
  workers?: string
  metricsPort?: string
}

function buildProgram(): Command {
  return new Command('mcp-pki-gateway')
    .description(
      'Put mcp-pki-auth mutual authentication in front of an MCP server you did not write.\n' +
        'Serves POST /auth (handshake), an authenticated /mcp and GET /health; forwards /mcp to the upstream with the caller’s\n' +
        'fingerprint and role in X-MCP-PKI-* headers (HTTP) or MCP_PKI_* environment variables (stdio). Client-sent X-MCP-PKI-* headers are dropped.',
    )
    .requiredOption('--config <file>', 'server configuration (YAML): key, allowlist of client keys, auth, audit, transport')
    .option('--upstream <url>', 'the upstream Streamable HTTP MCP endpoint, e.g. http://127.0.0.1:3000/mcp')
    .option('--upstream-command <command>', 'start the upstream as a stdio MCP server, e.g. "node server.js" (one process per MCP session)')
    .option('--listen <host:port>', 'address to listen on (default: transport.host and transport.port from the config)')
    .option('--mcp-path <path>', 'path of the authenticated MCP endpoint', '/mcp')
    .option('--auth-path <path>', 'path of the handshake endpoint', '/auth')
    .option('--max-sessions <n>', 'stdio upstream: most concurrent sessions (processes)', '32')
    .option('--idle-timeout <seconds>', 'stdio upstream: stop a session after this long without a request', '1800')
    .option('--workers <n>', 'serve the port from n processes (default transport.workers, 1; needs --upstream); "auto" = one per core')
    .option('--metrics-port <port>', 'serve Prometheus GET /metrics on metrics.host at this port (turns metrics on; never the public port)')
    .option('--quiet', 'no informational lines on stderr')
}

function parseListen(value: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(value)
  const port = m ? Number(m[2]) : NaN
  if (!m || port > 65535) throw new UsageError(`--listen must be host:port, got ${JSON.stringify(value)}`)
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port }
}

function portOption(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  const port = Number(value)
  if (!/^\d+$/.test(value) || port > 65535) throw new UsageError(`${flag} must be 0..65535, got ${JSON.stringify(value)}`)
  return port
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${flag} must be a positive integer, got ${JSON.stringify(value)}`)
  return n
}

/**
 * The root of the sealed session ids: `auth.ticket_key` when set (shared by a fleet), else the
 * server key's private seed. (With `auth.ticket_key_rotation` the ticket keys are random per
 * process, so the server key is used: sessions then survive restarts of the same server.) A server
 * key in the ssh-agent has no seed to give: random, so MCP sessions end with the process (as its
 * ticket keys do then).
 */
function sessionIdRoot(config: Config, keyPair: ServerKey): Buffer {
  if (config.auth.ticket_key !== null) {
    const raw = Buffer.from(config.auth.ticket_key, 'base64url')
    if (raw.byteLength === 32) return raw
  }
  return keyPair.privateKey === undefined ? randomBytes(32) : privateKeySeed(keyPair.privateKey)
}

async function main(): Promise<void> {
  const program = configureProgram(buildProgram())
  program.parse(process.argv)
  const opts = program.opts<GatewayCliOptions>()
  if ((opts.upstream === undefined) === (opts.upstreamCommand === undefined)) {
    throw new UsageError('give exactly one of --upstream <url> and --upstream-command <command>')
  }
  let upstream: Upstream
  if (opts.upstream !== undefined) {
    let url: URL
    try {
      url = new URL(opts.upstream)
    } catch {
      throw new UsageError(`--upstream must be an absolute http(s) URL, got ${JSON.stringify(opts.upstream)}`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--upstream must be an http:// or https:// URL')
    upstream = { url }
  } else {
    const words = splitCommand(opts.upstreamCommand!)
    if (words.length === 0) throw new UsageError('--upstream-command is empty')
    upstream = { command: words[0]!, args: words.slice(1) }
  }
  for (const [flag, p] of [['--mcp-path', opts.mcpPath], ['--auth-path', opts.authPath]] as const) {
    if (!p.startsWith('/')) throw new UsageError(`${flag} must start with /`)
  }
  const maxSessions = positiveInt(opts.maxSessions, '--max-sessions')
  const idleTimeoutMs = positiveInt(opts.idleTimeout, '--idle-timeout') * 1000
  const info = (line: string): void => {
    if (!opts.quiet) process.stderr.write(`mcp-pki-gateway: ${printableLines(line)}\n`)
  }

  const config = await loadConfig(opts.config)
  const { host, port } = opts.listen !== undefined ? parseListen(opts.listen) : { host: config.transport.host, port: config.transport.port }
  const workers = workersOrUsage(opts.workers, config, port)
  const metricsPort = portOption(opts.metricsPort, '--metrics-port')
  if (metricsPort !== undefined && metricsPort !== 0 && metricsPort === port) throw new UsageError(`--metrics-port must differ from the public port ${port}: metrics are never served on the public port`)
  if (workers > 1 && (metricsPort !== undefined || config.metrics.enabled)) {
    throw new UsageError('metrics are served by a single process for now: run with --workers 1, or turn metrics off (each worker would need its own listener)')
  }
  if (workers > 1 && opts.upstreamCommand !== undefined) {
    throw new UsageError('--workers needs --upstream <url>: a stdio upstream keeps each MCP session in the one process that started it')
  }
  if (workers > 1 && !isClusterWorker()) {
    await prepareServerFiles(config)
    await runPrimary({ config, workers, log: info, onReady: (banner) => info(banner) })
    return
  }
  const replayStore = workerReplayStore(config)
  const metrics = config.metrics.enabled || metricsPort !== undefined ? createAuthMetrics() : undefined
  const configured = await createAuthServiceFromConfig(config, { ...(replayStore ? { replayStore } : {}), ...(metrics ? { metrics } : {}) })
  // Sealed session ids (no in-memory binding): they survive a restart and work on every gateway of
  // a fleet (or worker) that shares auth.ticket_key (or, without one, the server key).
  const policy = await startPolicyFromConfig(opts.config, {
    log(event, fields, level) {
      configured.events.log(event, fields, level)
      if (event === 'authz.reload_failed') process.stderr.write(`mcp-pki-gateway: policy edit refused: ${String(fields?.reason)}\n`)
      else if (event === 'authz.reload') info(`policy reloaded from ${String(fields?.path)}: ${String(fields?.rules)} rules, default ${String(fields?.default)}`)
    },
  }).catch(async (err: unknown) => {
    await configured.close()
    throw err
  })
  if (policy !== undefined) info(`authorization: ${policy.current.ruleCount} rules, default ${policy.current.default} (${policy.source.file})`)
  const mcpAuth = createMcpAuth(configured.service, { audit: configured.events, bindSessions: false, maxHandshakeSize: config.transport.max_body_size, ...(policy === undefined ? {} : { authorization: policy }) })
  // Open sessions: the stdio upstream's processes, or the MCP sessions bound to a key (HTTP upstream).
  const gatewayMetrics = metrics ? addGatewayMetrics(metrics, () => ('url' in upstream ? mcpAuth.sessions.size : gateway.sessions)) : undefined
  const gateway = createMcpGateway({
    readiness: () => configured.readiness.check(),
    ...(gatewayMetrics ? { observer: gatewayMetrics.observer } : {}),
    mcpAuth,
    upstream,
    sessionIdKey: sessionIdRoot(config, configured.keyPair),
    mcpPath: opts.mcpPath,
    authPath: opts.authPath,
    maxSessions,
    idleTimeoutMs,
    log: (line) => process.stderr.write(`mcp-pki-gateway: ${printableLines(line)}\n`),
  })
  let metricsServer: MetricsServer | undefined
  if (metrics !== undefined) {
    metricsServer = await serveMetrics(metrics, { host: config.metrics.host, port: metricsPort ?? config.metrics.port }).catch(async (err: unknown) => {
      await gateway.close()
      await configured.close()
      throw err
    })
    info(`metrics on ${metricsServer.url}`)
  }
  const tls = config.transport.type === 'https'
  // The handshake server's limits: header/request timeouts, transport.max_connections with a
  // per-address cap, the oldest idle connection giving way when full. No idle backstop on
  // sockets mid-response: SSE streams may stay quiet for long.
  const serverOptions = httpServerOptions(config.transport.timeout)
  const server = tls ? https.createServer({ ...serverOptions, ...(await tlsServerOptions(config.transport.ssl)) }, gateway.handler) : http.createServer(serverOptions, gateway.handler)
  hardenHttpServer(server, { timeoutSec: config.transport.timeout, maxConnections: config.transport.max_connections, idleBackstop: false })
  if (isClusterWorker()) labelResponses(server)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  const addr = server.address() as AddressInfo
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
  const base = `${tls ? 'https' : 'http'}://${shown}:${addr.port}`
  const where = 'url' in upstream ? String(upstream.url) : `command ${JSON.stringify(opts.upstreamCommand)}`
  const banner = `listening on ${base}${opts.mcpPath} (handshake ${base}${opts.authPath}); server key ${configured.service.fingerprint}; upstream ${where}`
  if (isClusterWorker()) reportReady(banner)
  else info(banner)

  await new Promise<void>((resolve) => {
    let stopping = false
    const stop = (): void => {
      if (stopping) return
      stopping = true
      info('shutting down')
      server.close()
      server.closeAllConnections()
      resolve()
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
    if (isClusterWorker()) onPrimaryStop(stop)
  })
  await metricsServer?.close()
  await gateway.close()
  policy?.close()
  await configured.close()
  // The IPC channel to the primary would keep a worker alive.
  if (isClusterWorker()) process.disconnect?.()
}

void runCli(main)
