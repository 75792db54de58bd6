/**
 * Gateway series (added to an {@link AuthMetrics} registry): upstream exchanges by HTTP status
 * and their latency, open MCP sessions, and tool calls by tool name and result.
 *
 * Tool calls are read from what passes through: the JSON-RPC request (`tools/call`, its id and
 * `params.name`) and the answer the client gets (JSON or an SSE stream), of which at most
 * {@link MAX_CAPTURE} bytes are kept, only for requests that carry `tools/call` or `tools/list`.
 * Tool names become labels only when the upstream listed them in a `tools/list` answer
 * (bounded, see labels.ts); any other name counts as `other`.
 * @module
 */
import type { ServerResponse } from 'node:http'
import { loadPromClient } from '../internal/load-on-use.js'
import type { GatewayObserver } from '../mcp/gateway.js'
import type { McpRequest } from '../mcp/server.js'
import type { AuthMetrics } from './auth-metrics.js'
import { statusLabel, ToolNames } from './labels.js'

/** Most bytes of one answer kept to find tool results and tool lists. */
export const MAX_CAPTURE = 1024 * 1024

type JsonRpcId = string | number
interface WatchedCalls {
  calls: Map<JsonRpcId, unknown>
  lists: Set<JsonRpcId>
}

export interface GatewayMetrics {
  readonly observer: GatewayObserver
  /** Names the upstream listed so far. */
  readonly tools: ToolNames
}

/**
 * @param openSessions read at scrape time (the gateway's stdio sessions or the bound MCP sessions)
 */
export function addGatewayMetrics(metrics: AuthMetrics, openSessions: () => number): GatewayMetrics {
  const registers = [metrics.registry]
  const { Counter, Gauge, Histogram } = loadPromClient()
  const upstream = new Counter({ name: 'mcp_pki_gateway_upstream_requests_total', help: 'Requests forwarded to the upstream MCP server, by its HTTP status (error = no answer).', labelNames: ['status'] as const, registers })
  const latency = new Histogram({ name: 'mcp_pki_gateway_upstream_duration_seconds', help: 'Upstream latency: until the response head (HTTP upstream) or the complete answer (stdio upstream).', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers })
  const toolCalls = new Counter({ name: 'mcp_pki_gateway_tool_calls_total', help: 'MCP tools/call requests by tool (names the upstream listed, else other) and result (ok, tool_error, error, unknown).', labelNames: ['tool', 'result'] as const, registers })
  new Gauge({ name: 'mcp_pki_gateway_mcp_sessions', help: 'Open MCP sessions through the gateway.', registers, collect() { this.set(openSessions()) } })
  const tools = new ToolNames()

  function settle(watched: WatchedCalls, res: ServerResponse, captured: Buffer | undefined): void {
    const answers = captured === undefined ? new Map<unknown, Record<string, unknown>>() : answersIn(captured, String(res.getHeader('content-type') ?? ''))
    for (const id of watched.lists) {
      const list = (answers.get(id)?.result as { tools?: unknown } | undefined)?.tools
      if (Array.isArray(list)) tools.learn(list.map((t: unknown) => (t !== null && typeof t === 'object' ? (t as { name?: unknown }).name : undefined)))
    }
    for (const [id, name] of watched.calls) toolCalls.labels(tools.label(name), res.statusCode >= 400 ? 'error' : resultOf(answers.get(id))).inc()
  }

  const observer: GatewayObserver = {
    upstream(status, seconds) {
      upstream.labels(statusLabel(status)).inc()
      latency.observe(seconds)
    },
    forwarding(req: McpRequest, res: ServerResponse) {
      if (req.method !== 'POST') return
      const watched = watchedCalls(req.body)
      if (watched === undefined) return
      const capture = tapResponse(res)
      let done = false
      const finish = (): void => {
        if (done) return
        done = true
        settle(watched, res, capture.bytes())
      }
      res.once('finish', finish)
      res.once('close', finish)
    },
  }
  return { observer, tools }
}

/** The `tools/call` (id → name) and `tools/list` requests in a JSON-RPC message or batch. */
function watchedCalls(body: unknown): WatchedCalls | undefined {
  const messages = Array.isArray(body) ? body : [body]
  let watched: WatchedCalls | undefined
  for (const m of messages) {
    if (m === null || typeof m !== 'object') continue
    const { method, id, params } = m as { method?: unknown; id?: unknown; params?: unknown }
    if (typeof id !== 'string' && typeof id !== 'number') continue
    if (method === 'tools/call') {
      watched ??= { calls: new Map(), lists: new Set() }
      watched.calls.set(id, params !== null && typeof params === 'object' ? (params as { name?: unknown }).name : undefined)
    } else if (method === 'tools/list') {
      watched ??= { calls: new Map(), lists: new Set() }
      watched.lists.add(id)
    }
  }
  return watched
}

/** Keeps a copy of what is written to `res` (up to MAX_CAPTURE bytes; beyond that, nothing). */
function tapResponse(res: ServerResponse): { bytes(): Buffer | undefined } {
  const chunks: Buffer[] = []
  let size = 0
  let overflow = false
  const keep = (chunk: unknown, encoding: unknown): void => {
    if (overflow || chunk === undefined || chunk === null || typeof chunk === 'function') return
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : chunk instanceof Uint8Array ? Buffer.from(chunk) : undefined
    if (buf === undefined) return
    size += buf.length
    if (size > MAX_CAPTURE) {
      overflow = true
      chunks.length = 0
      return
    }
    chunks.push(buf)
  }
  const write = res.write
  const end = res.end
  res.write = function (this: ServerResponse, ...args: unknown[]) {
    keep(args[0], args[1])
    return (write as (...a: unknown[]) => boolean).apply(this, args)
  } as ServerResponse['write']
  res.end = function (this: ServerResponse, ...args: unknown[]) {
    keep(args[0], args[1])
    return (end as (...a: unknown[]) => ServerResponse).apply(this, args)
  } as ServerResponse['end']
  return { bytes: () => (overflow ? undefined : Buffer.concat(chunks)) }
}

/** JSON-RPC answers by id, from a JSON body or the `data:` lines of an SSE stream. */
function answersIn(bytes: Buffer, contentType: string): Map<unknown, Record<string, unknown>> {
  const text = bytes.toString('utf8')
  const found = new Map<unknown, Record<string, unknown>>()
  const add = (value: unknown): void => {
    for (const m of Array.isArray(value) ? value : [value]) {
      if (m !== null && typeof m === 'object' && 'id' in m) found.set((m as { id: unknown }).id, m as Record<string, unknown>)
    }
  }
  const parse = (json: string): boolean => {
    try {
      add(JSON.parse(json))
      return true
    } catch {
      return false // not JSON (a partial stream or a keep-alive line): nothing to count
    }
  }
  // The content type is not always readable (writeHead may be given the headers directly): an
  // answer that is not one JSON document is read as an SSE stream.
  if (contentType.includes('text/event-stream') || !parse(text)) {
    for (const line of text.split(/\r?\n/)) if (line.startsWith('data:')) parse(line.slice(5).trim())
  }
  return found
}

function resultOf(answer: Record<string, unknown> | undefined): string {
  if (answer === undefined) return 'unknown'
  if (answer.error !== undefined) return 'error'
  const result = answer.result
  if (result !== null && typeof result === 'object' && (result as { isError?: unknown }).isError === true) return 'tool_error'
  return result === undefined ? 'unknown' : 'ok'
}
