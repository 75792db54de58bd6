/**
 * `mcp-pki-proxy --debug [file]`: a timestamped log of what the proxy did (handshakes, each
 * message's direction, method and id, errors, closing), for when the app's own log shows too
 * little. Default file: `~/.mcp-pki/proxy-<first 12 hex of SHA-256 of the server URL>-debug.log`
 * (like mcp-remote's `~/.mcp-auth/{server_hash}_debug.log`), created 0600. It never holds tokens,
 * proofs, header values, arguments or results (only the text of JSON-RPC errors).
 * @module
 */
import { createHash } from 'node:crypto'
import { appendFileSync, mkdirSync, openSync, closeSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import { printableLines } from '../../internal/text.js'

export interface DebugLog {
  readonly path: string
  write(line: string): void
}

/** The default debug log path for a server URL. */
export function defaultDebugLogPath(serverUrl: string): string {
  const hash = createHash('sha256').update(serverUrl).digest('hex').slice(0, 12)
  return join(homedir(), '.mcp-pki', `proxy-${hash}-debug.log`)
}

/** Opens (creates 0600, appends) the log file. Writes are synchronous so nothing is lost on exit. */
export function openDebugLog(path: string): DebugLog {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  closeSync(openSync(path, 'a', 0o600))
  return {
    path,
    write(line: string) {
      try {
        appendFileSync(path, `${new Date().toISOString()} [${process.pid}] ${printableLines(line)}\n`)
      } catch {
        // A debug log must never break the proxy.
      }
    },
  }
}

/** `→ request tools/call #3` style summary of a JSON-RPC message (no contents). */
export function summarize(message: Record<string, unknown>): string {
  const id = typeof message.id === 'string' || typeof message.id === 'number' ? ` #${message.id}` : ''
  if (typeof message.method === 'string') return `${id === '' ? 'notification' : 'request'} ${message.method}${id}`
  if (message.error !== undefined) {
    const e = message.error as { code?: unknown; message?: unknown }
    return `error${id} ${String(e.code)} ${typeof e.message === 'string' ? e.message.slice(0, 300) : ''}`
  }
  return `result${id}`
}
