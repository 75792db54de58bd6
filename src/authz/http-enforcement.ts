/**
 * The policy at the HTTP seam of an MCP endpoint, used by `createMcpAuth` (and so by
 * `mcp-pki-gateway`, which is built on it) once a request is authenticated:
 * - refused requests are answered here (`forbidden by policy`) and removed from the body that
 *   goes on, so neither the SDK server's handler nor the gateway's upstream ever sees them;
 * - answers to list requests are filtered as they stream back (JSON, SSE, batches).
 * Requests that name nothing the policy governs pass untouched, with no rewriting of the answer.
 * @module
 */
import type { ServerResponse } from 'node:http'
import { printable } from '../internal/text.js'
import type { AuditSink } from '../transport/auth-service.js'
import { inspectBody, type DecisionRecord, type Enforcement, type Inspection } from './jsonrpc-enforcement.js'
import { createResponseRewriter, denialsBody } from './response-rewriter.js'
import type { AuthzSubject, Authorizer } from './types.js'

/** The parts of the SDK `AuthInfo` the policy reads (structurally McpAuthInfo). */
export interface AuthInfoLike {
  clientId: string
  scopes: string[]
  extra?: Record<string, unknown>
}

/** A node:http request after authentication (structurally McpRequest). */
export interface NodeMcpRequest {
  method?: string | undefined
  headers: Record<string, string | string[] | undefined>
  body?: unknown
  rawBody?: Buffer
}

export interface EnforceOptions {
  authorizer: Authorizer
  audit?: AuditSink | undefined
  transport?: string | undefined
}

/** A GET asks for nothing: its stream may still carry list results an SDK replays (Last-Event-ID). */
const NOTHING_ASKED: Inspection = Object.freeze({ forward: undefined, changed: false, governed: false, denials: [], lists: new Map() })

const EMPTY_METADATA: Readonly<Record<string, unknown>> = Object.freeze({})

/** The policy subject for an authenticated request. */
export function subjectOf(authInfo: AuthInfoLike): AuthzSubject {
  const x = authInfo.extra ?? {}
  const md = x.metadata
  return {
    fingerprint: authInfo.clientId,
    role: typeof x.role === 'string' ? x.role : undefined,
    org: typeof x.org === 'string' ? x.org : undefined,
    scopes: authInfo.scopes,
    metadata: md !== null && typeof md === 'object' ? (md as Readonly<Record<string, unknown>>) : EMPTY_METADATA,
  }
}

/** A caller-chosen name as it goes into the audit log: control characters made visible, at most 200 characters. */
function auditName(text: string): string {
  const clean = printable(text)
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean
}

function enforcementFor(authInfo: AuthInfoLike, o: EnforceOptions): Enforcement {
  const subject = subjectOf(authInfo)
  const onDecision = (r: DecisionRecord): void => {
    if (o.audit === undefined || (r.decision.allowed && o.authorizer.auditAllowed !== true)) return
    o.audit.log(
      r.decision.allowed ? 'authz.allowed' : 'authz.denied',
      { client_fingerprint: subject.fingerprint, method: r.method, [r.kind]: auditName(r.name), rule: r.decision.rule, transport: o.transport },
      r.decision.allowed ? 'INFO' : 'WARN',
    )
  }
  return { subject, authorizer: o.authorizer, onDecision }
}

function needsWork(i: Inspection): boolean {
  return i.governed
}

/** Lists to filter or denials to add: otherwise the answer streams through untouched. */
function answerNeedsRewrite(i: Inspection): boolean {
  return i.lists.size > 0 || i.denials.length > 0
}

function headerOf(headers: unknown, name: string): string | undefined {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) return undefined
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) if (k.toLowerCase() === name) return Array.isArray(v) ? String(v[0]) : v === undefined ? undefined : String(v)
  return undefined
}

function dropHeader(headers: unknown, name: string): void {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) return
  for (const k of Object.keys(headers)) if (k.toLowerCase() === name) delete (headers as Record<string, unknown>)[k]
}

/** Rewrites what `res` sends through `rewriter` (writeHead, write and end of this one response). */
function hookResponse(res: ServerResponse, rewriter: ReturnType<typeof createResponseRewriter>): void {
  const writeHead = res.writeHead
  const write = res.write
  const end = res.end
  res.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
    let headers = typeof rest[0] === 'string' ? rest[1] : rest[0]
    const type = headerOf(headers, 'content-type') ?? (this.getHeader('content-type') as string | undefined)
    const h = rewriter.head(status, type)
    if (h.rewritten) {
      headers = { ...((headers as Record<string, unknown> | undefined) ?? {}) }
      dropHeader(headers, 'content-length')
      this.removeHeader('content-length')
      if (h.contentType !== undefined && h.contentType !== type) {
        dropHeader(headers, 'content-type')
        ;(headers as Record<string, unknown>)['content-type'] = h.contentType
      }
    }
    res.writeHead = writeHead
    return (writeHead as (...a: unknown[]) => ServerResponse).call(this, h.status, headers)
  } as typeof res.writeHead
  const toBytes = (chunk: unknown, encoding: unknown): Uint8Array =>
    typeof chunk === 'string' ? Buffer.from(chunk, (typeof encoding === 'string' ? encoding : 'utf8') as BufferEncoding) : (chunk as Uint8Array)
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    if (!this.headersSent) this.writeHead(this.statusCode)
    const cb = rest.find((r) => typeof r === 'function') as ((err?: Error | null) => void) | undefined
    const out = rewriter.push(toBytes(chunk, rest[0]))
    if (out.byteLength > 0) return (write as (...a: unknown[]) => boolean).call(this, out, cb)
    if (cb !== undefined) process.nextTick(cb)
    return true
  } as typeof res.write
  res.end = function (this: ServerResponse, ...args: unknown[]) {
    if (!this.headersSent) this.writeHead(this.statusCode)
    const cb = args.find((r) => typeof r === 'function') as (() => void) | undefined
    const chunk = typeof args[0] === 'function' ? undefined : args[0]
    const head = chunk === undefined || chunk === null ? new Uint8Array(0) : rewriter.push(toBytes(chunk, args[1]))
    const tail = rewriter.end()
    const out = Buffer.concat([head, tail])
    res.write = write
    res.end = end
    return (end as (...a: unknown[]) => ServerResponse).call(this, ...(out.byteLength > 0 ? [out] : []), ...(cb ? [cb] : []))
  } as typeof res.end
}

/**
 * Applies the policy to an authenticated node:http MCP request whose parsed body is `req.body`.
 * Returns false when the request was answered here (everything in it was refused).
 */
export function enforceNodeRequest(req: NodeMcpRequest, res: ServerResponse, authInfo: AuthInfoLike, o: EnforceOptions): boolean {
  const e = enforcementFor(authInfo, o)
  if (req.method === 'GET') {
    hookResponse(res, createResponseRewriter(NOTHING_ASKED, e, false, true))
    return true
  }
  if (req.method !== 'POST') return true
  const batch = Array.isArray(req.body)
  const inspection = inspectBody(req.body, e)
  if (!needsWork(inspection)) return true
  if (inspection.forward === undefined) {
    if (inspection.denials.length === 0) res.writeHead(202).end()
    else {
      const text = denialsBody(inspection, batch)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }).end(text)
    }
    return false
  }
  // What goes on is exactly what was decided on, re-serialized: an upstream whose JSON parser reads
  // the raw bytes differently (duplicate keys, say) cannot be handed a name other than the one checked.
  req.body = inspection.forward
  req.rawBody = Buffer.from(JSON.stringify(inspection.forward), 'utf8')
  req.headers['content-length'] = String(req.rawBody.byteLength)
  if (answerNeedsRewrite(inspection)) hookResponse(res, createResponseRewriter(inspection, e, batch))
  return true
}

/** A web `Response` passed through `rewriter` (status, headers and streamed body). */
function rewriteWebResponse(response: Response, rewriter: ReturnType<typeof createResponseRewriter>): Response {
  const h = rewriter.head(response.status, response.headers.get('content-type') ?? undefined)
  if (!h.rewritten) return response
  const headers = new Headers(response.headers)
  headers.delete('content-length')
  if (h.contentType !== undefined) headers.set('content-type', h.contentType)
  let body: ConstructorParameters<typeof Response>[0]
  if (response.body === null) body = Buffer.from(rewriter.end())
  else {
    body = response.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          const out = rewriter.push(chunk)
          if (out.byteLength > 0) controller.enqueue(out)
        },
        flush(controller) {
          const out = rewriter.end()
          if (out.byteLength > 0) controller.enqueue(out)
        },
      }),
    )
  }
  return new Response(body, { status: h.status, statusText: response.statusText, headers })
}

/** What {@link enforceWebRequest} decided: answer now, or go on with `request` and pass the answer through `finish`. */
export type WebEnforcement = { answer: Response } | { request: Request; finish(response: Response): Response }

/** Applies the policy to an authenticated web-standard MCP request (fetch-style handlers). */
export async function enforceWebRequest(request: Request, authInfo: AuthInfoLike, o: EnforceOptions): Promise<WebEnforcement> {
  const untouched = { request, finish: (r: Response) => r }
  if (request.method === 'GET') return { request, finish: (r) => rewriteWebResponse(r, createResponseRewriter(NOTHING_ASKED, enforcementFor(authInfo, o), false, true)) }
  if (request.method !== 'POST') return untouched
  let body: unknown
  try {
    body = JSON.parse(await request.clone().text())
  } catch {
    return untouched // the MCP handler answers the parse error
  }
  const e = enforcementFor(authInfo, o)
  const batch = Array.isArray(body)
  const inspection = inspectBody(body, e)
  if (!needsWork(inspection)) return untouched
  if (inspection.forward === undefined) {
    if (inspection.denials.length === 0) return { answer: new Response(null, { status: 202 }) }
    return { answer: new Response(denialsBody(inspection, batch), { status: 200, headers: { 'content-type': 'application/json' } }) }
  }
  // Re-serialized, as for node:http above.
  const headers = new Headers(request.headers)
  headers.delete('content-length')
  const forwarded = new Request(request.url, { method: 'POST', headers, body: JSON.stringify(inspection.forward), signal: request.signal })
  if (!answerNeedsRewrite(inspection)) return { request: forwarded, finish: (r: Response) => r }
  const rewriter = createResponseRewriter(inspection, e, batch)
  return {
    request: forwarded,
    finish: (response) => rewriteWebResponse(response, rewriter),
  }
}
