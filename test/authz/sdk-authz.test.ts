/**
 * Authorization in the library (`createMcpAuth({ authorization })`) with the real MCP SDK on both
 * sides: 1.x and 2.x servers (node:http `protect`, `protectFetch`, and the web `fetchHandler`),
 * 1.x and 2.x clients. The same policy gives the same results everywhere: allowed calls work,
 * refused ones get "forbidden by policy" and never reach a handler, lists (paginated, batched,
 * over JSON and SSE) hold only what the caller may use, deny beats allow, and a policy edit
 * reaches live sessions within a second while a broken edit is refused.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { Client as Client2, StreamableHTTPClientTransport as Transport2 } from '@modelcontextprotocol/client'
import { Client as Client1 } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport as Transport1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { compilePolicy } from '../../src/authz/compile-policy.js'
import { validatePolicyObject } from '../../src/authz/policy-schema.js'
import { watchPolicy, type PolicyHolder } from '../../src/authz/policy-source.js'
import type { Authorizer } from '../../src/authz/types.js'
import type { ConfigError } from '../../src/errors.js'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { createAuthFetch, createAuthProvider, type AuthFetch, type FetchFunction } from '../../src/mcp/client.js'
import { createMcpAuth, mountMcpAuth } from '../../src/mcp/server.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { makeParties, TestNonceStore, type Parties } from '../helpers/fixtures.js'
import { closeServer, listen } from '../mcp/fixtures/harness.js'
import { sdk1Handler, sdk2Handler, type Runs } from './sdk-servers.js'

const cleanups: (() => Promise<unknown> | unknown)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

export const POLICY_YAML = `default: deny
rules:
  - name: readers
    match: { role: reader }
    allow:
      tools: ["echo", "search_*", "delete_*"]
      resources: ["file:///public/*"]
      prompts: ["greet"]
  - name: no-deletes-for-contractors
    match: { org: contractors }
    deny: { tools: ["delete_*"] }
`

function policyOf(doc: unknown): Authorizer {
  const v = validatePolicyObject(doc)
  assert.ok(v.ok, v.ok ? '' : v.problems.join('\n'))
  return compilePolicy(v.policy)
}

const POLICY = policyOf({
  default: 'deny',
  rules: [
    { name: 'readers', match: { role: 'reader' }, allow: { tools: ['echo', 'search_*', 'delete_*'], resources: ['file:///public/*'], prompts: ['greet'] } },
    { name: 'no-deletes-for-contractors', match: { org: 'contractors' }, deny: { tools: ['delete_*'] } },
  ],
})

/** The SDK clients' common surface. */
interface AnyClient {
  callTool(p: { name: string; arguments?: Record<string, unknown> }): Promise<{ content?: unknown; isError?: boolean }>
  listTools(p?: { cursor?: string }): Promise<{ tools: { name: string }[]; nextCursor?: string }>
  listResources(): Promise<{ resources: { uri: string }[] }>
  listResourceTemplates(): Promise<{ resourceTemplates: { uriTemplate: string }[] }>
  listPrompts(): Promise<{ prompts: { name: string }[] }>
  readResource(p: { uri: string }): Promise<unknown>
  getPrompt(p: { name: string }): Promise<unknown>
  subscribeResource(p: { uri: string }): Promise<unknown>
  close(): Promise<void>
}

interface Connected {
  client: AnyClient
  sessionId: string
  protocolVersion: string
}

type Sdk = 1 | 2

function partiesFor(metadata: Record<string, unknown>): Parties {
  const p = makeParties()
  p.serverAllowlist.add(p.client.publicKeyRaw, metadata)
  return p
}

function authFetchFor(p: Parties, url: string, base?: FetchFunction): AuthFetch {
  return createAuthFetch({ url, keyPair: p.client, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), retryAttempts: 0, ...(base ? { fetch: base } : {}) })
}

async function connect(sdk: Sdk, url: string, authFetch: AuthFetch): Promise<Connected> {
  if (sdk === 1) {
    const client = new Client1({ name: 'authz-1', version: '1' })
    const t = new Transport1(new URL(url), { fetch: authFetch })
    await client.connect(t)
    cleanups.push(() => client.close())
    return { client: client as unknown as AnyClient, sessionId: t.sessionId!, protocolVersion: t.protocolVersion ?? '2025-06-18' }
  }
  const client = new Client2({ name: 'authz-2', version: '1' }, { versionNegotiation: { mode: 'legacy' } })
  const t = new Transport2(new URL(url), { fetch: authFetch, authProvider: createAuthProvider(authFetch) })
  await client.connect(t)
  cleanups.push(() => client.close())
  return { client: client as unknown as AnyClient, sessionId: t.sessionId!, protocolVersion: (t as { protocolVersion?: string }).protocolVersion ?? '2025-06-18' }
}

interface Served {
  url: string
  runs: Runs
  /** The fetch clients go through (in-process for the web fetchHandler). */
  base?: FetchFunction
}

type ServerKind = 'sdk1-sse' | 'sdk1-json' | 'sdk2-protectFetch' | 'sdk2-fetchHandler'

async function serve(kind: ServerKind, p: Parties, authorization: Authorizer, audit?: { log(e: string, f: Record<string, unknown>): void }): Promise<Served> {
  const runs: Runs = new Map()
  if (kind === 'sdk2-fetchHandler') {
    const origin = 'http://mcp.authz.test'
    const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(1000, Date.now), audience: origin })
    const mcpAuth = createMcpAuth(service, { authorization, ...(audit ? { audit } : {}) })
    const web = mcpAuth.fetchHandler(sdk2Handler(runs))
    const base: FetchFunction = async (input, init) => {
      const request = new Request(input as string | URL, init)
      return new URL(request.url).pathname === '/auth' ? mcpAuth.fetchAuthHandler(request) : web(request)
    }
    return { url: `${origin}/mcp`, runs, base }
  }
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(1000, Date.now) })
  const mcpAuth = createMcpAuth(service, { authorization, ...(audit ? { audit } : {}) })
  const server = createServer()
  if (kind === 'sdk2-protectFetch') mountMcpAuth(server, mcpAuth, { fetchHandler: sdk2Handler(runs) })
  else mountMcpAuth(server, mcpAuth, { handler: sdk1Handler(runs, { json: kind === 'sdk1-json', paginate: true }) })
  const origin = await listen(server)
  cleanups.push(() => closeServer(server))
  return { url: `${origin}/mcp`, runs }
}

/** Every JSON-RPC message of an answer, JSON or SSE. */
async function messagesOf(r: Response): Promise<Array<Record<string, unknown>>> {
  const text = await r.text()
  if ((r.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    return text
      .split(/\n\n/)
      .map((ev) => ev.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n'))
      .filter((d) => d !== '')
      .map((d) => JSON.parse(d) as Record<string, unknown>)
  }
  const body = JSON.parse(text) as unknown
  return (Array.isArray(body) ? body : [body]) as Array<Record<string, unknown>>
}

function rawPost(authFetch: AuthFetch, url: string, c: Connected, body: unknown): Promise<Response> {
  return authFetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': c.sessionId, 'mcp-protocol-version': c.protocolVersion },
    body: JSON.stringify(body),
  })
}

async function allTools(client: AnyClient): Promise<{ names: string[] }> {
  const names: string[] = []
  let cursor: string | undefined
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor })
    names.push(...page.tools.map((t) => t.name))
    cursor = page.nextCursor
  } while (cursor !== undefined)
  return { names: names.sort() }
}

const MATRIX: Array<{ server: ServerKind; client: Sdk }> = [
  { server: 'sdk1-sse', client: 1 },
  { server: 'sdk1-json', client: 2 },
  { server: 'sdk2-protectFetch', client: 2 },
  { server: 'sdk2-fetchHandler', client: 1 },
]

for (const { server: kind, client: sdk } of MATRIX) {
  describe(`${kind} server, SDK ${sdk}.x client`, () => {
    test('allowed calls work; refused ones get "forbidden by policy" and never reach a handler; deny beats allow; the denial is audited', async () => {
      const p = partiesFor({ role: 'reader', org: 'contractors' })
      const events: Array<{ event: string; fields: Record<string, unknown> }> = []
      const s = await serve(kind, p, POLICY, { log: (event, fields) => events.push({ event, fields }) })
      const authFetch = authFetchFor(p, s.url, s.base)
      const { client } = await connect(sdk, s.url, authFetch)

      const echo = await client.callTool({ name: 'echo', arguments: { text: 'hi' } })
      assert.deepEqual(echo.content, [{ type: 'text', text: 'echo:hi' }])
      assert.equal(s.runs.get('echo'), 1)

      // delete_user is allowed by "readers" and denied by "no-deletes-for-contractors": deny wins.
      await assert.rejects(client.callTool({ name: 'delete_user', arguments: {} }), /forbidden by policy/)
      await assert.rejects(client.callTool({ name: 'secret', arguments: {} }), /forbidden by policy/)
      await assert.rejects(client.readResource({ uri: 'file:///private/keys.txt' }), /forbidden by policy/)
      await assert.rejects(client.getPrompt({ name: 'internal' }), /forbidden by policy/)
      await assert.rejects(client.subscribeResource({ uri: 'file:///private/keys.txt' }), /forbidden by policy/)
      assert.equal(s.runs.get('delete_user'), undefined)
      assert.equal(s.runs.get('secret'), undefined)
      assert.equal(s.runs.get('file:///private/keys.txt'), undefined)
      assert.equal(s.runs.get('internal'), undefined)

      await client.readResource({ uri: 'file:///public/readme.txt' })
      await client.getPrompt({ name: 'greet' })
      assert.equal(s.runs.get('file:///public/readme.txt'), 1)
      assert.equal(s.runs.get('greet'), 1)

      const denied = events.filter((e) => e.event === 'authz.denied')
      assert.equal(denied.length, 5)
      assert.deepEqual(denied[0]!.fields, { client_fingerprint: p.client.fingerprint, method: 'tools/call', tool: 'delete_user', rule: 'no-deletes-for-contractors', transport: 'http' })
      assert.equal(denied[1]!.fields.rule, 'default')
      assert.equal(events.filter((e) => e.event === 'authz.allowed').length, 0, 'allowed calls are not audited unless audit_allowed')
    })

    test('tools, resources, templates and prompts lists hold only what the caller may use' + (kind.startsWith('sdk1') ? ' (page by page)' : ''), async () => {
      const p = partiesFor({ role: 'reader', org: 'contractors' })
      const s = await serve(kind, p, POLICY)
      const { client } = await connect(sdk, s.url, authFetchFor(p, s.url, s.base))
      const tools = await allTools(client)
      assert.deepEqual(tools.names, ['echo', 'search_docs', 'search_web'])
      // The server pages two tools at a time (the 2.x client follows the cursors itself): filtering
      // keeps every page and its cursor, so all three pages were asked for.
      if (kind.startsWith('sdk1')) assert.equal(s.runs.get('tools/list'), 3)
      assert.deepEqual((await client.listResources()).resources.map((r) => r.uri), ['file:///public/readme.txt'])
      assert.deepEqual((await client.listResourceTemplates()).resourceTemplates.map((r) => r.uriTemplate), ['file:///public/{name}'])
      assert.deepEqual((await client.listPrompts()).prompts.map((r) => r.name), ['greet'])
    })

    test('a caller the policy does not name sees empty lists and may call nothing (deny by default)', async () => {
      const p = partiesFor({ role: 'guest' })
      const s = await serve(kind, p, POLICY)
      const { client } = await connect(sdk, s.url, authFetchFor(p, s.url, s.base))
      assert.deepEqual((await allTools(client)).names, [])
      await assert.rejects(client.callTool({ name: 'echo', arguments: {} }), /forbidden by policy/)
      assert.equal(s.runs.get('echo'), undefined)
    })
  })
}

for (const kind of ['sdk1-sse', 'sdk1-json'] as const) {
  test(`${kind}: a batch is split: refused requests are answered here, the rest reach the server, lists in it are filtered`, async () => {
    const p = partiesFor({ role: 'reader', org: 'contractors' })
    const s = await serve(kind, p, POLICY)
    const authFetch = authFetchFor(p, s.url, s.base)
    const c = await connect(1, s.url, authFetch)
    const r = await rawPost(authFetch, s.url, c, [
      { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'delete_user', arguments: {} } },
      { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo', arguments: { text: 'b' } } },
      { jsonrpc: '2.0', id: 4, method: 'prompts/list', params: {} },
    ])
    assert.equal(r.status, 200)
    assert.equal(r.headers.get('content-type')?.split(';')[0], kind === 'sdk1-sse' ? 'text/event-stream' : 'application/json')
    const byId = new Map((await messagesOf(r)).map((m) => [m.id, m]))
    assert.deepEqual([...byId.keys()].sort(), [1, 2, 3, 4])
    assert.deepEqual(((byId.get(1)!.result as { tools: { name: string }[] }).tools).map((t) => t.name), ['echo', 'search_web'], 'first page, filtered')
    assert.deepEqual(byId.get(2)!.error, { code: -32003, message: 'forbidden by policy' })
    assert.deepEqual((byId.get(3)!.result as { content: unknown }).content, [{ type: 'text', text: 'echo:b' }])
    assert.deepEqual(((byId.get(4)!.result as { prompts: { name: string }[] }).prompts).map((t) => t.name), ['greet'])
    assert.equal(s.runs.get('delete_user'), undefined)

    // A batch of refused requests only is answered without reaching the server at all.
    const before = s.runs.get('tools/list')
    const r2 = await rawPost(authFetch, s.url, c, [{ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'secret' } }, { jsonrpc: '2.0', method: 'tools/call', params: { name: 'secret' } }])
    assert.deepEqual(await messagesOf(r2), [{ jsonrpc: '2.0', id: 5, error: { code: -32003, message: 'forbidden by policy' } }])
    assert.equal(s.runs.get('secret'), undefined)
    assert.equal(s.runs.get('tools/list'), before)
  })
}

test('a resumed GET stream (Last-Event-ID) replays list answers filtered too', async () => {
  const p = partiesFor({ role: 'reader', org: 'contractors' })
  const runs: Runs = new Map()
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(1000, Date.now) })
  const server = createServer()
  mountMcpAuth(server, createMcpAuth(service, { authorization: POLICY }), { handler: sdk1Handler(runs, { resumable: true }) })
  const url = `${await listen(server)}/mcp`
  cleanups.push(() => closeServer(server))
  const authFetch = authFetchFor(p, url)
  const c = await connect(1, url, authFetch)
  assert.ok(c.protocolVersion >= '2025-11-25', `priming events need 2025-11-25, got ${c.protocolVersion}`)
  const r = await rawPost(authFetch, url, c, { jsonrpc: '2.0', id: 41, method: 'prompts/list', params: {} })
  const text = await r.text()
  const priming = /^id: (\S+)\n/m.exec(text)
  assert.ok(priming, `a priming event with an id: ${text}`)
  const replay = await authFetch(url, { method: 'GET', headers: { accept: 'text/event-stream', 'mcp-session-id': c.sessionId, 'mcp-protocol-version': c.protocolVersion, 'last-event-id': priming[1]! } })
  assert.equal(replay.status, 200)
  const reader = replay.body!.getReader()
  const giveUp = setTimeout(() => void reader.cancel(), 10_000) // the answer, or an empty stream: never a hang
  let got = ''
  while (!/"id":41/.test(got)) {
    const { value, done } = await reader.read()
    if (done) break
    got += Buffer.from(value).toString('utf8')
  }
  clearTimeout(giveUp)
  await reader.cancel()
  const event = got.split('\n\n').find((ev) => ev.includes('"id":41'))!
  const message = JSON.parse(event.split('\n').find((l) => l.startsWith('data:'))!.slice(5)) as { result: { prompts: { name: string }[] } }
  assert.deepEqual(message.result.prompts.map((x) => x.name), ['greet'], 'the replayed answer is filtered')
})

describe('hot reload', () => {
  let dir: string
  let holder: PolicyHolder
  test('a policy edit reaches live sessions within a second; a broken edit is refused with its path and the last good policy keeps serving', async () => {
    dir = await mkdtemp(join(tmpdir(), 'authz-reload-'))
    cleanups.push(() => rm(dir, { recursive: true, force: true }))
    const file = join(dir, 'policy.yml')
    await writeFile(file, POLICY_YAML)
    const errors: ConfigError[] = []
    holder = await watchPolicy({ file }, { onError: (e) => errors.push(e) })
    cleanups.push(() => holder.close())
    for (const [kind, sdk] of [['sdk1-sse', 1], ['sdk2-protectFetch', 2]] as const) {
      await writeFile(file, POLICY_YAML)
      await holder.check()
      const p = partiesFor({ role: 'reader', org: 'contractors' })
      const s = await serve(kind, p, holder)
      const { client } = await connect(sdk, s.url, authFetchFor(p, s.url))
      await assert.rejects(client.callTool({ name: 'secret', arguments: {} }), /forbidden by policy/)

      await writeFile(file, POLICY_YAML.replace('"delete_*"]', '"delete_*", "secret"]'))
      const t0 = Date.now()
      let names: string[] = []
      while (Date.now() - t0 < 5000 && !names.includes('secret')) {
        names = (await allTools(client)).names
        if (!names.includes('secret')) await new Promise((r) => setTimeout(r, 20))
      }
      const took = Date.now() - t0
      assert.ok(names.includes('secret'), 'the edit was picked up')
      assert.ok(took < 1000, `picked up in ${took} ms`)
      assert.deepEqual((await client.callTool({ name: 'secret', arguments: {} })).content, [{ type: 'text', text: 'secret:' }])

      // A broken edit: refused, named by file and path; the policy above keeps deciding.
      errors.length = 0
      await writeFile(file, POLICY_YAML.replace('deny: { tools:', 'deny: { tool:'))
      const t1 = Date.now()
      while (errors.length === 0 && Date.now() - t1 < 5000) await new Promise((r) => setTimeout(r, 20))
      assert.equal(errors.length, 1)
      assert.match(errors[0]!.message, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: invalid policy`))
      assert.deepEqual(errors[0]!.problems, [`${file}: rules[1].deny.tool: unknown field (did you mean "tools"?)`])
      assert.deepEqual((await client.callTool({ name: 'secret', arguments: {} })).content, [{ type: 'text', text: 'secret:' }])
      await assert.rejects(client.callTool({ name: 'delete_user', arguments: {} }), /forbidden by policy/)
    }
  })
})
