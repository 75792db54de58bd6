/**
 * `--ignore-tool` for the stdio proxy (as in mcp-remote): tools whose names match a pattern are
 * removed from `tools/list` results and a `tools/call` for one is answered with an error without
 * reaching the server. A pattern is a tool name with `*` matching any run of characters
 * (`delete*`, `*account`, `exact_name`).
 * @module
 */
import type { JsonRpcMessage } from './bridge.js'

type Id = string | number

export interface ToolFilter {
  /** For a message from the app: an error reply to send back instead of forwarding, or undefined. */
  refuse(message: JsonRpcMessage): JsonRpcMessage | undefined
  /** For a message from the server: the message with ignored tools removed from a tools/list result. */
  filter(message: JsonRpcMessage): JsonRpcMessage
  /** Whether a tool name matches one of the patterns. */
  ignores(name: string): boolean
}

function patternToRegExp(pattern: string): RegExp {
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
  return new RegExp(`^${escaped.join('.*')}$`)
}

function idOf(message: JsonRpcMessage): Id | undefined {
  const id = message.id
  return typeof id === 'string' || typeof id === 'number' ? id : undefined
}

/** A filter for `patterns` (an empty list passes everything through). */
export function createToolFilter(patterns: readonly string[]): ToolFilter {
  const regexps = patterns.map(patternToRegExp)
  const ignores = (name: string): boolean => regexps.some((r) => r.test(name))
  const listRequests = new Set<Id>()
  return {
    ignores,
    refuse(message) {
      if (regexps.length === 0) return undefined
      const id = idOf(message)
      if (message.method === 'tools/list' && id !== undefined) listRequests.add(id)
      if (message.method !== 'tools/call' || id === undefined) return undefined
      const name = (message.params as { name?: unknown } | undefined)?.name
      if (typeof name !== 'string' || !ignores(name)) return undefined
      return { jsonrpc: '2.0', id, error: { code: -32602, message: `Tool ${name} is not available: mcp-pki-proxy hides it (--ignore-tool)` } }
    },
    filter(message) {
      const id = idOf(message)
      if (id === undefined || !listRequests.delete(id)) return message
      const result = message.result as { tools?: unknown } | undefined
      if (!Array.isArray(result?.tools)) return message
      const tools = (result.tools as { name?: unknown }[]).filter((t) => typeof t?.name !== 'string' || !ignores(t.name))
      return { ...message, result: { ...result, tools } }
    },
  }
}
