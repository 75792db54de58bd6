/**
 * The metrics listener: `GET /metrics` (Prometheus text format) on its own address and port,
 * `127.0.0.1:9464` by default — never the public port, so the figures are not served to peers.
 * Every other path is 404, every other method 405.
 * @module
 */
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'

/** Anything that renders an exposition (AuthMetrics does). */
export interface MetricsSource {
  metrics(): Promise<string>
  readonly contentType: string
}

export interface MetricsServerOptions {
  /** Default `127.0.0.1`. */
  host?: string
  /** Default 9464 (0 = any free port). */
  port?: number
  /** Several sources (e.g. auth and gateway registries) are concatenated; their names must not overlap. */
  extra?: readonly MetricsSource[]
}

export interface MetricsServer {
  readonly server: http.Server
  readonly address: AddressInfo
  /** `http://host:port/metrics`. */
  readonly url: string
  close(): Promise<void>
}

export const DEFAULT_METRICS_HOST = '127.0.0.1'
export const DEFAULT_METRICS_PORT = 9464

/**
 * Starts the metrics listener.
 * @throws Error naming the address when it cannot listen (e.g. the port is taken).
 * @example
 * const listener = await serveMetrics(metrics, { port: 9464 })
 * // scrape http://127.0.0.1:9464/metrics; await listener.close() on shutdown
 */
export async function serveMetrics(source: MetricsSource, options: MetricsServerOptions = {}): Promise<MetricsServer> {
  const host = options.host ?? DEFAULT_METRICS_HOST
  const port = options.port ?? DEFAULT_METRICS_PORT
  const sources = [source, ...(options.extra ?? [])]
  const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000, maxHeaderSize: 8 * 1024 }, (req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0]
    if (path !== '/metrics') return answer(res, 404, 'not found: metrics are at /metrics\n')
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(res, 405, 'use GET /metrics\n', { allow: 'GET, HEAD' })
    Promise.all(sources.map((s) => s.metrics())).then(
      (texts) => answer(res, 200, texts.join(''), { 'content-type': source.contentType }, req.method === 'HEAD'),
      () => answer(res, 500, 'metrics collection failed\n'),
    )
  })
  server.maxConnections = 16
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new Error(`metrics listener cannot listen on ${host}:${port}: ${err.code ?? err.message}; set metrics.port (or --metrics-port) to a free port`, { cause: err })))
    server.listen(port, host, () => resolve())
  })
  const address = server.address() as AddressInfo
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return {
    server,
    address,
    url: `http://${shown}:${address.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

function answer(res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}, headOnly = false): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(text)), ...headers })
  res.end(headOnly ? undefined : text)
}
