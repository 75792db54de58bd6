/**
 * mcp-pki-gateway (the built bin) in front of an unmodified SDK server (test/mcp/fixtures/plain-server.mjs),
 * with an HTTP upstream and a stdio upstream; SDK clients authenticate with createAuthFetchFromConfig.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { after, before, describe, test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { createAuthFetchFromConfig, type AuthFetch } from '../../src/mcp/client.js'
import { splitCommand, upstreamHeaders } from '../../src/mcp/gateway.js'
import { makeDeployment, GATEWAY_BIN, PLAIN_SERVER, type Deployment } from './fixtures/deployment.js'
import { textOf } from './fixtures/harness.js'

const children: ChildProcess[] = []
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
})

/** Spawns a process and resolves with the first capture of `pattern` on the given stream. */
function spawnAndWait(args: string[], stream: 'stdout' | 'stderr', pattern: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray; output: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let out = ''
    let err = ''
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()))
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()))
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; stderr: ${err}`)), 15_000)
    const check = (): void => {
      const m = pattern.exec(stream === 'stdout' ? out : err)
      if (m) {
        clearTimeout(timer)
        resolve({ child, match: m, output: () => err })
      }
    }
    child[stream]!.on('data', check)
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code} before ${pattern}; stderr: ${err}`))
    })
  })
}

async function startGateway(d: Deployment, upstreamArgs: string[]): Promise<{ url: string; child: ChildProcess; stderr: () => string }> {
  const { child, match, output } = await spawnAndWait([GATEWAY_BIN, '--config', d.serverConfig, '--listen', '127.0.0.1:0', ...upstreamArgs], 'stderr', /listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/)
  return { url: match[1]!, child, stderr: output }
}

interface Seen {
  headers: { fingerprint: string | null; role: string | null; org: string | null; authorization: string | null }
  env: { fingerprint: string | null; role: string | null; org: string | null }
  pid: number
  calls: number
}

async function caller(client: Client): Promise<Seen> {
  const r = await client.callTool({ name: 'caller', arguments: {} })
  assert.notEqual(r.isError, true, textOf(r))
  return JSON.parse(textOf(r)) as Seen
}

async function connect(url: string, authFetch: AuthFetch, forged = true): Promise<Client> {
  const client = new Client({ name: 'gw-client', version: '1.0.0' })
  // A client trying to claim another identity to the upstream.
  const requestInit = forged ? { headers: { 'X-MCP-PKI-Fingerprint': 'f'.repeat(64), 'x-mcp-pki-role': 'admin', 'X-MCP-PKI-Org': 'evil' } } : undefined
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: authFetch, ...(requestInit ? { requestInit } : {}) }))
  return client
}

const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' }

test('splitCommand and upstreamHeaders', () => {
  assert.deepEqual(splitCommand(`node "my server.js" --name 'a b' x\\ y`), ['node', 'my server.js', '--name', 'a b', 'x y'])
  assert.throws(() => splitCommand('node "oops'), TypeError)
  const req = { auth: { token: 't', clientId: 'ab', scopes: [], extra: { fingerprint: 'ab', role: 'r\n1', org: 'o', sessionId: 's', metadata: {} } } }
  const h = upstreamHeaders({ host: 'x', authorization: 'Bearer t', 'mcp-pki-proof': 'p', 'x-mcp-pki-fingerprint': 'forged', 'x-mcp-pki-extra': 'y', accept: 'a', 'mcp-session-id': 'sid' }, req as never)
  assert.deepEqual(h, { accept: 'a', 'mcp-session-id': 'sid', 'x-mcp-pki-fingerprint': 'ab', 'x-mcp-pki-role': 'r?1', 'x-mcp-pki-org': 'o' })
})

describe('HTTP upstream', () => {
  let d: Deployment
  let gw: { url: string; child: ChildProcess; stderr: () => string }
  let upstreamUrl: string
  before(async () => {
    assert.ok(existsSync(GATEWAY_BIN), `${GATEWAY_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
    d = await makeDeployment()
    const up = await spawnAndWait([PLAIN_SERVER, 'http'], 'stdout', /listening (http:\/\/\S+)/)
    upstreamUrl = up.match[1]!
    gw = await startGateway(d, ['--upstream', upstreamUrl])
  })
  after(async () => {
    await d.cleanup()
  })

  test('the upstream sees the caller in X-MCP-PKI-* headers set by the gateway; forged ones are replaced', async () => {
    const config = await d.writeClientConfig('client', { serverUrl: gw.url.replace(/\/mcp$/, '/auth') })
    const authFetch = await createAuthFetchFromConfig(config, gw.url, { interactive: false })
    const client = await connect(gw.url, authFetch)
    try {
      const tools = await client.listTools()
      assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['caller', 'echo'])
      const seen = await caller(client)
      assert.equal(seen.headers.fingerprint, d.client.fingerprint)
      assert.equal(seen.headers.role, 'trusted_client')
      assert.equal(seen.headers.org, 'example_org')
      assert.equal(seen.headers.authorization, null, 'the session token is not passed upstream')
      const echo = await client.callTool({ name: 'echo', arguments: { text: 'héllo' } })
      assert.equal(textOf(echo), 'héllo')
      assert.equal(authFetch.handshakes, 1)
    } finally {
      await client.close()
    }
  })

  test('without a token, or with another key’s MCP session: refused, and the upstream never sees the call', async () => {
    const config = await d.writeClientConfig('client', { serverUrl: gw.url.replace(/\/mcp$/, '/auth') })
    const authFetch = await createAuthFetchFromConfig(config, gw.url, { interactive: false })
    const client = await connect(gw.url, authFetch, false)
    try {
      const before = (await caller(client)).calls
      const sid = (client as unknown as { transport: StreamableHTTPClientTransport }).transport.sessionId!
      const call = JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'echo', arguments: { text: 'x' } } })
      const anon = await fetch(gw.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, body: call })
      assert.equal(anon.status, 401)
      assert.match(anon.headers.get('www-authenticate') ?? '', /^Bearer /)
      await anon.body?.cancel()

      // Another allowlisted key.
      const other = generateKeyPair()
      const { updateAllowlistFile } = await import('../../src/allowlist/allowlist-file.js')
      await updateAllowlistFile(`${d.dir}/keys/server_allowlist.json`, (list) => void list.add({ publicKeyRaw: other.publicKeyRaw, metadata: { role: 'trusted_client' } }))
      const otherConfig = await d.writeClientConfig('other', { serverUrl: gw.url.replace(/\/mcp$/, '/auth'), keyPair: other })
      let otherFetch: AuthFetch | undefined
      for (let i = 0; i < 40 && otherFetch === undefined; i++) {
        // the gateway picks up the allowlist edit within its poll interval
        const f = await createAuthFetchFromConfig(otherConfig, gw.url, { interactive: false })
        otherFetch = await f.session().then(
          () => f,
          () => new Promise<undefined>((r) => setTimeout(() => r(undefined), 100)),
        )
      }
      assert.ok(otherFetch, 'the other key became usable')
      const hijack = await otherFetch(gw.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, body: call })
      assert.equal(hijack.status, 404)
      await hijack.body?.cancel()
      assert.equal((await caller(client)).calls, before + 1, 'only our own caller call reached the upstream')
    } finally {
      await client.close()
    }
  })

  test('/health answers with the server fingerprint', async () => {
    const res = await fetch(gw.url.replace(/\/mcp$/, '/health'))
    assert.deepEqual(await res.json(), { status: 'ok', server_fingerprint: d.server.fingerprint })
  })
})

describe('stdio upstream', () => {
  let d: Deployment
  let gw: { url: string; child: ChildProcess; stderr: () => string }
  before(async () => {
    d = await makeDeployment()
    gw = await startGateway(d, ['--upstream-command', `"${process.execPath}" "${PLAIN_SERVER}" stdio`])
  })
  after(async () => {
    await d.cleanup()
  })

  test('each MCP session gets its own upstream process, which knows the caller from its environment', async () => {
    const config = await d.writeClientConfig('client', { serverUrl: gw.url.replace(/\/mcp$/, '/auth') })
    const authFetch = await createAuthFetchFromConfig(config, gw.url, { interactive: false })
    const a = await connect(gw.url, authFetch)
    const b = await connect(gw.url, authFetch)
    try {
      const tools = await a.listTools()
      assert.deepEqual(tools.tools.map((t) => t.name).sort(), ['caller', 'echo'])
      const seenA = await caller(a)
      const seenB = await caller(b)
      assert.equal(seenA.env.fingerprint, d.client.fingerprint)
      assert.equal(seenA.env.role, 'trusted_client')
      assert.equal(seenA.env.org, 'example_org')
      assert.notEqual(seenA.pid, seenB.pid)
      assert.equal(textOf(await b.callTool({ name: 'echo', arguments: { text: 'over stdio' } })), 'over stdio')
      assert.equal(authFetch.handshakes, 1)

      // Ending the session stops its process: the session id is gone afterwards.
      const tb = (b as unknown as { transport: StreamableHTTPClientTransport }).transport
      const sid = tb.sessionId!
      await tb.terminateSession()
      const res = await authFetch(gw.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) })
      assert.equal(res.status, 404)
      await res.body?.cancel()
      assert.equal((await caller(a)).pid, seenA.pid, 'the other session is unaffected')
    } finally {
      await a.close()
      await b.close()
    }
  })

  test('without a token: 401 and no MCP session is opened', async () => {
    const init = JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } })
    const res = await fetch(gw.url, { method: 'POST', headers: MCP_HEADERS, body: init })
    assert.equal(res.status, 401)
    assert.equal(res.headers.get('mcp-session-id'), null)
    await res.body?.cancel()
  })
})
