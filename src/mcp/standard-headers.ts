/**
 * The Streamable HTTP headers of the stateless MCP revision (2026-07-28, SEP-2243) for a relay.
 *
 * A request of that revision names its protocol version in `params._meta` and must also carry
 * `MCP-Protocol-Version`, `Mcp-Method` and — for `tools/call`, `prompts/get`, `resources/read` and
 * the task methods — `Mcp-Name` (the tool or prompt name, the resource URI, the task id) as HTTP
 * headers, which a server checks against the body. An SDK 2.x client transport sets them itself;
 * the SDK 1.x transport the stdio proxy relays through does not, so {@link withStandardHeaders}
 * adds them from the body. Requests of the older revisions (no `_meta` version) pass unchanged.
 * @module
 */
import type { FetchFunction } from './client.js'

const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion'
const NAME_SOURCE: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
}
const SENTINEL_PREFIX = '=?base64?'
const SENTINEL_SUFFIX = '?='

/** A header value as the revision encodes it: as is when printable ASCII, else `=?base64?…?=`. */
export function encodeHeaderValue(value: string): string {
  const plain = value.length > 0 && value === value.trim() && /^[\t\x20-\x7e]*$/.test(value) && !(value.startsWith(SENTINEL_PREFIX) && value.endsWith(SENTINEL_SUFFIX))
  return plain ? value : `${SENTINEL_PREFIX}${Buffer.from(value, 'utf8').toString('base64')}${SENTINEL_SUFFIX}`
}

/** The standard headers for one JSON-RPC request body, or undefined for anything else. */
export function standardHeadersFor(body: unknown): Record<string, string> | undefined {
  if (typeof body !== 'string' || !body.startsWith('{')) return undefined
  let message: { method?: unknown; id?: unknown; params?: Record<string, unknown> }
  try {
    message = JSON.parse(body) as typeof message
  } catch {
    return undefined
  }
  if (typeof message.method !== 'string' || message.id === undefined) return undefined
  const meta = message.params?._meta as Record<string, unknown> | undefined
  const version = meta?.[META_PROTOCOL_VERSION]
  if (typeof version !== 'string') return undefined
  const headers: Record<string, string> = { 'mcp-protocol-version': version, 'mcp-method': message.method }
  const field = Object.hasOwn(NAME_SOURCE, message.method) ? NAME_SOURCE[message.method] : undefined
  const name = field === undefined ? undefined : message.params?.[field]
  if (typeof name === 'string') headers['mcp-name'] = encodeHeaderValue(name)
  return headers
}

/** `fetch` with the standard headers added to POSTs of stateless-revision requests. */
export function withStandardHeaders(fetch: FetchFunction): FetchFunction {
  return (input, init) => {
    const extra = init?.method === 'POST' ? standardHeadersFor(init.body) : undefined
    if (extra === undefined) return fetch(input, init)
    const headers = new Headers(init?.headers)
    for (const [k, v] of Object.entries(extra)) headers.set(k, v)
    return fetch(input, { ...init, headers })
  }
}
