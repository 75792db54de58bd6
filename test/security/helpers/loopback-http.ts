/**
 * HTTP over loopback for attack tests: one request per fresh connection that never hangs (a
 * `timeout` status instead), the error code of a reply, and small waiting helpers.
 */
import assert from 'node:assert/strict'
import * as http from 'node:http'
import { AuditLogger } from '../../../src/audit/audit-logger.js'
import { collectReply } from '../../helpers/http-reply.js'

export interface Reply {
  status: number | string
  text: string
  json: { type?: string; error?: { code?: string } | string; challenge_token?: unknown; session_token?: unknown; reached?: boolean; client?: string } & Record<string, unknown>
  headers: http.IncomingHttpHeaders
}

/** Where a request goes: a port on 127.0.0.1, a port on another loopback address, or a Unix socket. */
export type Target = { port: number; host?: string } | { socketPath: string }

export interface SendOptions {
  method?: string
  path?: string
  body?: string | Buffer
  headers?: Record<string, string | string[]>
  timeoutMs?: number
  /** Send the body as two chunks with no Content-Length. */
  chunked?: boolean
}

export const MCP_BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

function where(to: Target): http.RequestOptions {
  if ('socketPath' in to) return { socketPath: to.socketPath }
  const host = to.host ?? '127.0.0.1'
  return { host, port: to.port, family: host.includes(':') ? 6 : 4 }
}

/** One request on a fresh connection (POST /mcp by default); resolves `timeout` instead of hanging. */
export function send(to: Target, o: SendOptions): Promise<Reply> {
  return new Promise((resolve) => {
    const body = o.body ?? ''
    const headers: Record<string, string | string[]> = { 'content-type': 'application/json', ...(o.chunked === true ? {} : { 'content-length': String(Buffer.byteLength(body)) }), ...o.headers }
    const req = http.request({ ...where(to), path: o.path ?? '/mcp', method: o.method ?? 'POST', agent: false, headers }, (res) => collectReply<Reply['json']>(res, resolve))
    const timer = setTimeout(() => {
      req.destroy()
      resolve({ status: 'timeout', text: '', json: {}, headers: {} })
    }, o.timeoutMs ?? 10_000)
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: `error ${e.code ?? e.message}`, text: '', json: {}, headers: {} }))
    req.on('close', () => clearTimeout(timer))
    if (o.chunked === true && Buffer.byteLength(body) > 0) {
      // Two chunks, so the body is really streamed.
      const b = Buffer.from(body)
      req.write(b.subarray(0, b.byteLength >> 1))
      req.end(b.subarray(b.byteLength >> 1))
    } else req.end(body)
  })
}

/** The error code of a reply (`{"error":{"code":…}}` from /auth, `{"error":"…"}` from MCP endpoints). */
export const replyCode = (r: Reply): string | undefined => (typeof r.json.error === 'string' ? r.json.error : r.json.error?.code)

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Polls `cond` every 20 ms; fails the test naming `what` when it does not hold within `ms`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const t0 = Date.now()
  while (!(await cond())) {
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`)
    await sleep(20)
  }
}

/** An audit logger that writes nothing. */
export const quiet = (): AuditLogger => new AuditLogger({ enabled: false })
