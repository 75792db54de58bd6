/**
 * Policy on JSON-RPC messages, transport-free: which requests of a POST body (one message or a
 * batch) may go on, the errors that answer the others, and the filtering of listed views.
 *
 * | method                                     | decides on                  |
 * |--------------------------------------------|-----------------------------|
 * | tools/call                                 | tool `params.name`          |
 * | resources/read, resources/subscribe        | resource `params.uri`       |
 * | prompts/get                                | prompt `params.name`        |
 * | completion/complete                        | `params.ref`: prompt `name` (ref/prompt) or resource `uri` (ref/resource) |
 * | tools/list, prompts/list                   | each item's `name`          |
 * | resources/list                             | each item's `uri`           |
 * | resources/templates/list                   | each item's `uriTemplate`   |
 *
 * A denied request is answered `{"code": -32003, "message": "forbidden by policy"}` and removed
 * from what goes on; which rule denied is audited, never told to the caller.
 * @module
 */
import type { AuthzDecision, AuthzKind, AuthzSubject, Authorizer } from './types.js'

export const FORBIDDEN_BY_POLICY_CODE = -32003
export const FORBIDDEN_BY_POLICY_MESSAGE = 'forbidden by policy'

export type ListField = 'tools' | 'resources' | 'resourceTemplates' | 'prompts'
type Id = string | number

const GUARDED: Readonly<Record<string, { kind: AuthzKind; param: 'name' | 'uri'; from?: undefined }>> = {
  'tools/call': { kind: 'tool', param: 'name' },
  'resources/read': { kind: 'resource', param: 'uri' },
  'resources/subscribe': { kind: 'resource', param: 'uri' },
  'prompts/get': { kind: 'prompt', param: 'name' },
}

const LISTS: Readonly<Record<string, { field: ListField; kind: AuthzKind; key: 'name' | 'uri' | 'uriTemplate' }>> = {
  'tools/list': { field: 'tools', kind: 'tool', key: 'name' },
  'resources/list': { field: 'resources', kind: 'resource', key: 'uri' },
  'resources/templates/list': { field: 'resourceTemplates', kind: 'resource', key: 'uriTemplate' },
  'prompts/list': { field: 'prompts', kind: 'prompt', key: 'name' },
}

/** A decision as it was taken, for the audit log. */
export interface DecisionRecord {
  method: string
  kind: AuthzKind
  name: string
  decision: AuthzDecision
}

export interface Enforcement {
  readonly subject: AuthzSubject
  readonly authorizer: Authorizer
  /** Sees every call decision (not list filtering). */
  readonly onDecision?: ((record: DecisionRecord) => void) | undefined
}

export interface Inspection {
  /** What goes on: the body itself when nothing was refused, a smaller batch, or undefined when nothing is left. */
  forward: unknown
  /** Something was removed from the body. */
  changed: boolean
  /** The body names something the policy governs (a call it decided, or a list to filter). */
  governed: boolean
  /** Error answers for the refused requests. */
  denials: Array<{ jsonrpc: '2.0'; id: Id; error: { code: number; message: string } }>
  /** Request ids whose results are lists to filter. */
  lists: Map<Id, ListField>
}

function safeDecide(e: Enforcement, kind: AuthzKind, name: string, args: unknown): AuthzDecision {
  try {
    const a = args !== null && typeof args === 'object' && !Array.isArray(args) ? (args as Record<string, unknown>) : undefined
    return e.authorizer.decide(e.subject, { kind, name, arguments: a })
  } catch {
    return { allowed: false, rule: 'error' } // an engine that fails denies
  }
}

function isId(v: unknown): v is Id {
  return typeof v === 'string' || typeof v === 'number'
}

/** What a completion request is about: argument values of a prompt, or of a resource template. */
function completionTarget(params: Record<string, unknown>): { kind: AuthzKind; param: 'name' | 'uri'; from: Record<string, unknown> } {
  const ref = (params.ref ?? {}) as Record<string, unknown>
  // Unknown ref types are decided as a prompt named '' (denied unless a prompt glob `*` allows it): fail closed.
  return ref.type === 'ref/resource' ? { kind: 'resource', param: 'uri', from: ref } : { kind: 'prompt', param: 'name', from: ref }
}

/** Decides one message: true = goes on. */
function admit(e: Enforcement, m: unknown, out: Inspection): boolean {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return true
  const msg = m as { method?: unknown; id?: unknown; params?: unknown }
  if (typeof msg.method !== 'string') return true
  const list = LISTS[msg.method]
  if (list !== undefined) {
    out.governed = true
    if (isId(msg.id)) out.lists.set(msg.id, list.field)
    return true
  }
  const params = (msg.params ?? {}) as Record<string, unknown>
  const target = msg.method === 'completion/complete' ? completionTarget(params) : GUARDED[msg.method]
  if (target === undefined) return true
  out.governed = true
  const raw = (target.from ?? params)[target.param]
  const name = typeof raw === 'string' ? raw : ''
  const decision = safeDecide(e, target.kind, name, msg.method === 'completion/complete' ? undefined : params.arguments)
  e.onDecision?.({ method: msg.method, kind: target.kind, name, decision })
  if (decision.allowed) return true
  if (isId(msg.id)) out.denials.push({ jsonrpc: '2.0', id: msg.id, error: { code: FORBIDDEN_BY_POLICY_CODE, message: FORBIDDEN_BY_POLICY_MESSAGE } })
  return false // a denied notification is dropped
}

/** Applies the policy to a parsed POST body (one message or a batch). */
export function inspectBody(body: unknown, e: Enforcement): Inspection {
  const out: Inspection = { forward: body, changed: false, governed: false, denials: [], lists: new Map() }
  if (Array.isArray(body)) {
    const kept = body.filter((m) => admit(e, m, out))
    if (kept.length !== body.length) {
      out.changed = true
      out.forward = kept.length === 0 ? undefined : kept
    }
  } else if (!admit(e, body, out)) {
    out.changed = true
    out.forward = undefined
  }
  return out
}

/** The result of a list request with the items the caller may not use left out (other fields kept, `nextCursor` included). */
export function filterListResult(field: ListField, result: unknown, e: Enforcement): unknown {
  if (result === null || typeof result !== 'object') return result
  const items = (result as Record<string, unknown>)[field]
  if (!Array.isArray(items)) return result
  const spec = Object.values(LISTS).find((l) => l.field === field)!
  const kept = items.filter((item) => {
    const raw = item !== null && typeof item === 'object' ? (item as Record<string, unknown>)[spec.key] : undefined
    return typeof raw === 'string' && safeDecide(e, spec.kind, raw, undefined).allowed
  })
  return kept.length === items.length ? result : { ...(result as Record<string, unknown>), [field]: kept }
}

/** Filters one response message if it answers a list request; returns it unchanged otherwise. */
export function filterResponse(message: unknown, lists: ReadonlyMap<Id, ListField>, e: Enforcement): unknown {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) return message
  const m = message as { id?: unknown; result?: unknown }
  if (!isId(m.id) || m.result === undefined) return message
  const field = lists.get(m.id)
  if (field === undefined) return message
  const result = filterListResult(field, m.result, e)
  return result === m.result ? message : { ...m, result }
}

const LIST_FIELDS: readonly ListField[] = ['tools', 'resourceTemplates', 'resources', 'prompts']

/**
 * Filters a response that has the shape of a list result (`result.tools`, `result.resources`,
 * `result.resourceTemplates` or `result.prompts` is an array), whatever request it answers: for
 * streams where the request is not known, such as events an SDK replays on a resumed GET stream
 * (`Last-Event-ID`).
 */
export function filterResponseByShape(message: unknown, e: Enforcement): unknown {
  if (message === null || typeof message !== 'object' || Array.isArray(message)) return message
  const m = message as { id?: unknown; result?: unknown }
  if (!isId(m.id) || m.result === null || typeof m.result !== 'object') return message
  const field = LIST_FIELDS.find((f) => Array.isArray((m.result as Record<string, unknown>)[f]))
  if (field === undefined) return message
  const result = filterListResult(field, m.result, e)
  return result === m.result ? message : { ...m, result }
}
