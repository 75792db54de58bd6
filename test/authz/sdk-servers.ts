/**
 * SDK servers for the authorization tests, 1.x and 2.x, with the same tools, resources and prompts,
 * counting every handler run so a test can tell that a refused call never reached one.
 */
import { randomUUID } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { McpServer as McpServer1, ResourceTemplate as ResourceTemplate1 } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { EventStore } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { isInitializeRequest as isInit1, ListToolsRequestSchema } from '@modelcontextprotocol/sdk/types.js'
import { isInitializeRequest as isInit2, McpServer as McpServer2, ResourceTemplate as ResourceTemplate2, WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/server'
import { z } from 'zod'
import type { McpFetchHandler, McpRequest } from '../../src/mcp/server.js'

export const TOOLS = ['echo', 'search_web', 'search_docs', 'delete_user', 'secret'] as const
export const RESOURCES = ['file:///public/readme.txt', 'file:///private/keys.txt'] as const
export const PROMPTS = ['greet', 'internal'] as const

/** Handler runs by tool name, resource URI or prompt name; `tools/list` counts list requests. */
export type Runs = Map<string, number>

function ran(runs: Runs, key: string): void {
  runs.set(key, (runs.get(key) ?? 0) + 1)
}

const text = (t: string) => ({ content: [{ type: 'text' as const, text: t }] })

function build1(runs: Runs, paginate: boolean): McpServer1 {
  const mcp = new McpServer1({ name: 'authz-sdk1', version: '1.0.0' })
  for (const name of TOOLS) mcp.registerTool(name, { description: name, inputSchema: { text: z.string().optional() } }, ({ text: t }) => (ran(runs, name), text(`${name}:${t ?? ''}`)))
  for (const uri of RESOURCES) mcp.registerResource(uri, uri, {}, () => (ran(runs, uri), { contents: [{ uri, text: uri }] }))
  mcp.registerResource('public-files', new ResourceTemplate1('file:///public/{name}', { list: undefined }), {}, (uri) => (ran(runs, 'template'), { contents: [{ uri: uri.href, text: 'x' }] }))
  mcp.registerResource('private-files', new ResourceTemplate1('file:///private/{name}', { list: undefined }), {}, (uri) => (ran(runs, 'template'), { contents: [{ uri: uri.href, text: 'x' }] }))
  for (const name of PROMPTS) mcp.registerPrompt(name, { description: name }, () => (ran(runs, name), { messages: [{ role: 'user' as const, content: { type: 'text' as const, text: name } }] }))
  if (paginate) {
    // Two tools per page, so filtering must hold page by page.
    mcp.server.setRequestHandler(ListToolsRequestSchema, (req) => {
      ran(runs, 'tools/list')
      const start = Number(req.params?.cursor ?? 0)
      const page = TOOLS.slice(start, start + 2).map((name) => ({ name, inputSchema: { type: 'object' as const } }))
      return start + 2 < TOOLS.length ? { tools: page, nextCursor: String(start + 2) } : { tools: page }
    })
  }
  return mcp
}

/** SDK 1.x, stateful Streamable HTTP over node:http (for `mcpAuth.protect` / `mountMcpAuth({ handler })`). */
/**
 * The SDK's example InMemoryEventStore orders events by sorting `<stream>_<ms>_<random>` ids, so
 * two events stored in the same millisecond replay in random order (a resumed stream then missed
 * the answer it was resumed for, and the test waited for ever). This one replays in the order stored.
 */
class InsertionOrderEventStore implements EventStore {
  private readonly events: { id: string; streamId: string; message: Parameters<EventStore['storeEvent']>[1] }[] = []
  private next = 0

  async storeEvent(streamId: string, message: Parameters<EventStore['storeEvent']>[1]): Promise<string> {
    const id = `${streamId}_${++this.next}`
    this.events.push({ id, streamId, message })
    return id
  }

  async replayEventsAfter(lastEventId: string, { send }: Parameters<EventStore['replayEventsAfter']>[1]): Promise<string> {
    const at = this.events.findIndex((e) => e.id === lastEventId)
    if (at === -1) return ''
    const streamId = this.events[at]!.streamId
    for (const e of this.events.slice(at + 1)) if (e.streamId === streamId) await send(e.id, e.message)
    return streamId
  }
}

export function sdk1Handler(runs: Runs, opts: { json?: boolean; paginate?: boolean; resumable?: boolean } = {}): (req: McpRequest, res: ServerResponse) => Promise<void> {
  const transports = new Map<string, StreamableHTTPServerTransport>()
  return async (req, res) => {
    const sid = req.headers['mcp-session-id']
    let t = typeof sid === 'string' ? transports.get(sid) : undefined
    if (t === undefined) {
      if (sid !== undefined || !isInit1(req.body)) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: 'no session' }, id: null }))
        return
      }
      const created: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        enableJsonResponse: opts.json ?? false,
        ...(opts.resumable === true ? { eventStore: new InsertionOrderEventStore() } : {}),
        onsessioninitialized: (id) => void transports.set(id, created),
      })
      await build1(runs, opts.paginate ?? false).connect(created)
      t = created
    }
    await t.handleRequest(req, res, req.body)
  }
}

function build2(runs: Runs): McpServer2 {
  const mcp = new McpServer2({ name: 'authz-sdk2', version: '1.0.0' })
  for (const name of TOOLS) mcp.registerTool(name, { description: name, inputSchema: z.object({ text: z.string().optional() }) }, ({ text: t }) => (ran(runs, name), text(`${name}:${t ?? ''}`)))
  for (const uri of RESOURCES) mcp.registerResource(uri, uri, {}, () => (ran(runs, uri), { contents: [{ uri, text: uri }] }))
  mcp.registerResource('public-files', new ResourceTemplate2('file:///public/{name}', { list: undefined }), {}, (uri) => (ran(runs, 'template'), { contents: [{ uri: uri.href, text: 'x' }] }))
  mcp.registerResource('private-files', new ResourceTemplate2('file:///private/{name}', { list: undefined }), {}, (uri) => (ran(runs, 'template'), { contents: [{ uri: uri.href, text: 'x' }] }))
  for (const name of PROMPTS) mcp.registerPrompt(name, { description: name }, () => (ran(runs, name), { messages: [{ role: 'user' as const, content: { type: 'text' as const, text: name } }] }))
  return mcp
}

/** SDK 2.x, stateful web-standard transport (for `protectFetch` / `fetchHandler`). */
export function sdk2Handler(runs: Runs): McpFetchHandler {
  const transports = new Map<string, WebStandardStreamableHTTPServerTransport>()
  return async (request, authInfo) => {
    const sid = request.headers.get('mcp-session-id')
    const body: unknown = request.method === 'POST' ? await request.json() : undefined
    let t = sid === null ? undefined : transports.get(sid)
    if (t === undefined) {
      if (sid !== null || !isInit2(body)) return Response.json({ jsonrpc: '2.0', error: { code: -32000, message: 'no session' }, id: null }, { status: 400 })
      const created: WebStandardStreamableHTTPServerTransport = new WebStandardStreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => void transports.set(id, created),
      })
      await build2(runs).connect(created)
      t = created
    }
    return t.handleRequest(request, { authInfo, parsedBody: body })
  }
}
