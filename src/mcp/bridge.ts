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
  /** The text for an error that kept a message from reaching the server (default its message). */
  explain?: (err: unknown) => string
  /** Looks at each message from the client first: a reply returned here is sent back instead of forwarding. */
  fromClient?: (message: JsonRpcMessage) => JsonRpcMessage | undefined
  /** Rewrites each message from the server before it is delivered. */
  fromServer?: (message: JsonRpcMessage) => JsonRpcMessage
}

/** The protocol version a request of the stateless MCP revision (2026-07-28) carries in `_meta`. */
const META_PROTOCOL_VERSION = 'io.modelcontextprotocol/protocolVersion'

function isAbort(err: Error): boolean {
  return err.name === 'AbortError' || /AbortError|operation was aborted/.test(err.message)
}

export interface Bridge {
  /** Resolves when either side closed (and the other was closed too). */
  readonly closed: Promise<void>
  /** From now on, aborted requests and streams are not reported (call before ending the remote session). */
  beginClose(): void
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

  let closeStarted = false
  async function closeBoth(): Promise<void> {
    if (closeStarted) return
    closeStarted = true
    closing = true
    await Promise.allSettled([server.close(), client.close()])
    resolveClosed()
  }

  const explain = options.explain ?? ((err: unknown) => (err instanceof Error ? err.message : String(err)))
  client.onmessage = (message) => {
    const reply = options.fromClient?.(message)
    if (reply !== undefined) {
      client.send(reply).catch(() => {})
      return
    }
    if (isRequest(message) && message.method === 'initialize') initializeIds.add(message.id)
    // A request of the stateless revision names its version itself (there is no initialize).
    const metaVersion = ((message.params as { _meta?: Record<string, unknown> } | undefined)?._meta ?? {})[META_PROTOCOL_VERSION]
    if (typeof metaVersion === 'string') server.setProtocolVersion?.(metaVersion)
    server.send(message).catch((err: unknown) => {
      if (closing) return
      const text = explain(err)
      log(`could not forward ${typeof message.method === 'string' ? message.method : 'a message'} to the server: ${text}`)
      if (isRequest(message)) {
        client.send({ jsonrpc: '2.0', id: message.id, error: { code: -32603, message: `${name}: ${text}` } }).catch(() => {})
      }
    })
  }
  server.onmessage = (raw) => {
    const message = options.fromServer?.(raw) ?? raw
    const id = message.id as Id | undefined
    if (id !== undefined && initializeIds.delete(id)) {
      const version = (message.result as { protocolVersion?: unknown } | undefined)?.protocolVersion
      if (typeof version === 'string') server.setProtocolVersion?.(version)
    }
    const related = id !== undefined && (message.result !== undefined || message.error !== undefined) ? { relatedRequestId: id } : undefined
    client.send(message, related).catch((err: unknown) => log(`could not deliver a message to the client: ${err instanceof Error ? err.message : String(err)}`))
  }
  // While closing, the aborted streams and requests report errors: they are the close, not a fault.
  client.onerror = (err) => {
    if (!(closing && isAbort(err))) log(`client side: ${err.message}`)
  }
  server.onerror = (err) => {
    if (!(closing && isAbort(err))) log(`server side: ${err.message}`)
  }
  client.onclose = () => void closeBoth()
  server.onclose = () => void closeBoth()

  await server.start()
  await client.start()
  return {
    closed,
    beginClose: () => {
      closing = true
    },
    close: closeBoth,
  }
}
