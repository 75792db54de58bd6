/**
 * When the stdio proxy cannot connect (the handshake failed, the URL is wrong …), the app must
 * learn why: an app that sees the process exit only shows "Connection closed". So the proxy keeps
 * stdio open just long enough to answer the app's first request (normally `initialize`, or
 * `server/discover` in the stateless revision) with a JSON-RPC error whose message says what is
 * wrong and how to fix it, then ends.
 * @module
 */
import type { JsonRpcMessage, McpTransport } from './bridge.js'

/** JSON-RPC error code of the proxy's "could not connect to the server" answer (implementation-defined range). */
export const PROXY_CONNECT_FAILED = -32001

export interface RefusalOptions {
  /** The error message the app sees (what is wrong, and the fix). */
  message: string
  /** Structured detail (`data` of the error). */
  data?: Record<string, unknown>
  /** Stop waiting for a request after this long (default 30 s). */
  waitMs?: number
}

/**
 * Starts `transport`, answers every request with the error until the first one has been answered,
 * then closes it. Resolves when closed (also when the app closes first, or after `waitMs`).
 */
export async function answerWithError(transport: McpTransport, o: RefusalOptions): Promise<void> {
  let finish!: () => void
  const done = new Promise<void>((resolve) => (finish = resolve))
  const timer = setTimeout(finish, o.waitMs ?? 30_000)
  timer.unref()
  transport.onclose = finish
  transport.onerror = () => {}
  transport.onmessage = (message: JsonRpcMessage) => {
    const id = message.id
    if (typeof message.method !== 'string' || (typeof id !== 'string' && typeof id !== 'number')) return
    const reply: JsonRpcMessage = { jsonrpc: '2.0', id, error: { code: PROXY_CONNECT_FAILED, message: o.message, ...(o.data === undefined ? {} : { data: o.data }) } }
    transport.send(reply).then(finish, finish)
  }
  await transport.start()
  await done
  clearTimeout(timer)
  await transport.close().catch(() => {})
}
