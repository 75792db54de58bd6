/**
 * A raw relay between two MCP transports (SDK `Transport` objects): every JSON-RPC message that
 * arrives on one side is sent on the other, unchanged. Used by `mcp-pki-proxy` (stdio ↔
 * authenticated Streamable HTTP) and `mcp-pki-gateway` (authenticated Streamable HTTP ↔ stdio).
 * It is not an MCP server or client: it never answers on anyone's behalf, except to turn a
 * request it could not forward into a JSON-RPC error so the caller does not wait forever.
 * @module
 */

/** A JSON-RPC message as the SDK transports carry it. */
export type JsonRpcMessage = Record<string, unknown> & { jsonrpc: '2.0' }

/** The SDK's `Transport` interface, structurally (1.x and 2.x). */
export interface McpTransport {
  start(): Promise<void>
  send(message: JsonRpcMessage, options?: Record<string, unknown>): Promise<void>
  close(): Promise<void>
  onclose?: (() => void) | undefined
  onerror?: ((error: Error) => void) | undefined
  onmessage?: ((message: JsonRpcMessage, extra?: unknown) => void) | undefined
  sessionId?: string | undefined
  setProtocolVersion?: ((version: string) => void) | undefined
}

export interface BridgeOptions {
  /** Diagnostics (never MCP traffic). Default: nothing. */
  log?: (line: string) => void
  /** Prefix for error messages sent back to the client (default `mcp-pki`). */
  name?: string
}

export interface Bridge {
  /** Resolves when either side closed (and the other was closed too). */
  readonly closed: Promise<void>
  close(): Promise<void>
}

type Id = string | number

function isRequest(m: JsonRpcMessage): m is JsonRpcMessage & { id: Id; method: string } {
  return typeof m.method === 'string' && (typeof m.id === 'string' || typeof m.id === 'number')
}

/**
 * Relays messages between `client` (the transport facing the MCP client: a server transport such
 * as StdioServerTransport or StreamableHTTPServerTransport) and `server` (the transport facing the
 * MCP server: a client transport such as StreamableHTTPClientTransport or StdioClientTransport).
 * Starts both transports (`server` first).
 */
export async function bridgeTransports(client: McpTransport, server: McpTransport, options: BridgeOptions = {}): Promise<Bridge> {
  const log = options.log ?? (() => {})
  const name = options.name ?? 'mcp-pki'
  const initializeIds = new Set<Id>()
  let closing = false
  let resolveClosed!: () => void
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve))

  async function closeBoth(): Promise<void> {
    if (closing) return
    closing = true
    await Promise.allSettled([server.close(), client.close()])
    resolveClosed()
  }

  client.onmessage = (message) => {
    if (isRequest(message) && message.method === 'initialize') initializeIds.add(message.id)
    server.send(message).catch((err: unknown) => {
      const text = err instanceof Error ? err.message : String(err)
      log(`could not forward ${typeof message.method === 'string' ? message.method : 'a message'} to the server: ${text}`)
      if (isRequest(message)) {
        client.send({ jsonrpc: '2.0', id: message.id, error: { code: -32603, message: `${name}: ${text}` } }).catch(() => {})
      }
    })
  }
  server.onmessage = (message) => {
    const id = message.id as Id | undefined
    if (id !== undefined && initializeIds.delete(id)) {
      const version = (message.result as { protocolVersion?: unknown } | undefined)?.protocolVersion
      if (typeof version === 'string') server.setProtocolVersion?.(version)
    }
    const options = id !== undefined && (message.result !== undefined || message.error !== undefined) ? { relatedRequestId: id } : undefined
    client.send(message, options).catch((err: unknown) => log(`could not deliver a message to the client: ${err instanceof Error ? err.message : String(err)}`))
  }
  client.onerror = (err) => log(`client side: ${err.message}`)
  server.onerror = (err) => log(`server side: ${err.message}`)
  client.onclose = () => void closeBoth()
  server.onclose = () => void closeBoth()

  await server.start()
  await client.start()
  return { closed, close: closeBoth }
}
