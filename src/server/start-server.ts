/**
 * Starts a complete handshake server from a config: the service ({@link createAuthServiceFromConfig}),
 * an http or https server (`transport.type` http/ws → http, https/wss → https) answering
 * `POST /auth` and `GET /health`, and the WebSocket endpoint `/ws` on the same port, whatever the
 * type says (one port serves both transports). `GET /ready` answers 503 until the stores are
 * reachable. With `metrics.enabled` (or {@link StartServerOptions.metricsPort}), `GET /metrics`
 * is served on a listener of its own (metrics.host:metrics.port, default 127.0.0.1:9464).
 * @module
 */
import type * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Config } from '../config/types.js'
import { createAuthMetrics, type AuthMetrics } from '../metrics/auth-metrics.js'
import { serveMetrics, type MetricsServer } from '../metrics/metrics-server.js'
import { createAuthHttpServer, type AuthHttpServer } from '../transport/http-server.js'
import { tlsServerOptions } from '../transport/tls.js'
import { createAuthWebSocketServer, type AuthWebSocketOptions, type AuthWebSocketServer } from '../transport/ws-server.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService, type FromConfigOptions } from './from-config.js'

export interface StartServerOptions extends FromConfigOptions {
  /** Overrides transport.host / transport.port (port 0 = any free port). */
  host?: string
  port?: number
  /** Requests on other paths than /auth and /health (default 404 JSON). */
  fallback?: (req: http.IncomingMessage, res: http.ServerResponse) => void
  onAuthenticated?: AuthWebSocketOptions['onAuthenticated']
  /** WebSocket handshake timeout in ms (default 10,000). */
  wsHandshakeTimeoutMs?: number
  /** Overrides metrics.port and turns the metrics listener on (0 = any free port). */
  metricsPort?: number
}

export interface RunningServer {
  readonly configured: ConfiguredAuthService
  readonly http: AuthHttpServer
  readonly ws: AuthWebSocketServer
  readonly address: AddressInfo
  readonly fingerprint: string
  /** `http(s)://host:port/auth`. */
  readonly authUrl: string
  /** `ws(s)://host:port/ws`. */
  readonly wsUrl: string
  readonly healthUrl: string
  readonly readyUrl: string
  /** The metrics listener, when metrics are on. */
  readonly metrics: MetricsServer | undefined
  /** Graceful stop: no new connections, requests in flight finish, stores and logs closed. */
  close(): Promise<void>
}

/** The metrics the server reports to: the caller's, or new ones when the config or options turn them on. */
function metricsFor(config: Config, opts: StartServerOptions): AuthMetrics | undefined {
  if (opts.metrics !== undefined) return opts.metrics
  return config.metrics.enabled || opts.metricsPort !== undefined ? createAuthMetrics() : undefined
}

export async function startServerFromConfig(config: Config, opts: StartServerOptions = {}): Promise<RunningServer> {
  const metrics = metricsFor(config, opts)
  const configured = await createAuthServiceFromConfig(config, { ...opts, ...(metrics ? { metrics } : {}) })
  let metricsServer: MetricsServer | undefined
  try {
    if (metrics !== undefined) metricsServer = await serveMetrics(metrics, { host: config.metrics.host, port: opts.metricsPort ?? config.metrics.port })
    const t = config.transport
    const secure = t.type === 'https' || t.type === 'wss'
    const tls = secure ? await tlsServerOptions(t.ssl) : undefined
    const httpServer = createAuthHttpServer({
      service: configured.service,
      host: opts.host ?? t.host,
      port: opts.port ?? t.port,
      maxConnections: t.max_connections,
      timeoutSec: t.timeout,
      maxBodySize: t.max_body_size,
      readiness: () => configured.readiness.check(),
      ...(tls ? { tls } : {}),
      ...(opts.fallback ? { fallback: opts.fallback } : {}),
    })
    const ws = createAuthWebSocketServer({
      service: configured.service,
      maxMessageSize: t.max_body_size,
      maxConnections: t.max_connections,
      ...(opts.wsHandshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs: opts.wsHandshakeTimeoutMs }),
      ...(opts.onAuthenticated ? { onAuthenticated: opts.onAuthenticated } : {}),
    })
    ws.attach(httpServer.server)
    const address = await httpServer.listen()
    const authUrl = httpServer.url('/auth')
    let closing: Promise<void> | undefined
    return {
      configured,
      http: httpServer,
      ws,
      address,
      get fingerprint() {
        return configured.service.fingerprint // follows a server-key rotation
      },
      authUrl,
      wsUrl: authUrl.replace(/^http/, 'ws').replace(/\/auth$/, '/ws'),
      healthUrl: httpServer.url('/health'),
      readyUrl: httpServer.url('/ready'),
      metrics: metricsServer,
      close() {
        closing ??= (async () => {
          await ws.close()
          await httpServer.close()
          await metricsServer?.close()
          await configured.close()
        })()
        return closing
      },
    }
  } catch (err) {
    await metricsServer?.close()
    await configured.close()
    throw err
  }
}
