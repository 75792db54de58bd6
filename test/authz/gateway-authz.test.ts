/**
 * Authorization in mcp-pki-gateway (the built bin) with both upstream kinds, in front of an
 * unmodified SDK server (test/mcp/fixtures/plain-server.mjs: tools `echo` and `caller`, where
 * `caller` reports how many tool calls the upstream has run). The policy is a file the gateway's
 * config names; the client is the SDK 1.x client with createAuthFetchFromConfig.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { createAuthFetchFromConfig, type AuthFetch } from '../../src/mcp/client.js'
import { makeDeployment, GATEWAY_BIN, PLAIN_SERVER, type Deployment } from '../mcp/fixtures/deployment.js'
import { textOf } from '../mcp/fixtures/harness.js'

const children: ChildProcess[] = []
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
})

function spawnAndWait(args: string[], stream: 'stdout' | 'stderr', pattern: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray; stderr: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let out = ''
    let err = ''
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()))
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()))
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; stderr: ${err}`)), 15_000)
    child[stream]!.on('data', () => {
      const m = pattern.exec(stream === 'stdout' ? out : err)
      if (m) {
        clearTimeout(timer)
        resolve({ child, match: m, stderr: () => err })
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code} before ${pattern}; stderr: ${err}`))
    })
  })
}

const POLICY = `default: deny
rules:
  - name: tools-for-everyone
    allow: { tools: ["caller", "echo"] }
  - name: no-echo-for-example-org
    match: { org: example_org }
    deny: { tools: ["echo"] }
`

async function waitFor(what: string, check: () => Promise<boolean> | boolean, ms = 5000): Promise<number> {
  const t0 = Date.now()
  while (!(await check())) {
    if (Date.now() - t0 > ms) assert.fail(`timed out: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return Date.now() - t0
}

const UPSTREAMS: Array<{ kind: string; args: () => Promise<string[]> }> = [
  {
    kind: 'HTTP upstream',
    args: async () => {
      const up = await spawnAndWait([PLAIN_SERVER, 'http'], 'stdout', /listening (http:\/\/\S+)/)
      return ['--upstream', up.match[1]!]
    },
  },
  { kind: 'stdio upstream', args: async () => ['--upstream-command', `"${process.execPath}" "${PLAIN_SERVER}" stdio`] },
]

for (const upstream of UPSTREAMS) {
  describe(`mcp-pki-gateway, ${upstream.kind}`, () => {
    let d: Deployment
    let url: string
    let stderr: () => string
    let policyFile: string
    let client: Client
    let authFetch: AuthFetch
    let sessionId: string

    before(async () => {
      d = await makeDeployment()
      policyFile = join(d.dir, 'policy.yml')
      await writeFile(policyFile, POLICY)
      await appendFile(d.serverConfig, 'authorization:\n  policy_file: ./policy.yml\n')
      const gw = await spawnAndWait([GATEWAY_BIN, '--config', d.serverConfig, '--listen', '127.0.0.1:0', ...(await upstream.args())], 'stderr', /listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/)
      url = gw.match[1]!
      stderr = gw.stderr
      assert.match(stderr(), /authorization: 2 rules, default deny/)
      const config = await d.writeClientConfig('client', { serverUrl: url.replace(/\/mcp$/, '/auth') })
      authFetch = await createAuthFetchFromConfig(config, url, { interactive: false })
      client = new Client({ name: 'gw-authz', version: '1' })
      const t = new StreamableHTTPClientTransport(new URL(url), { fetch: authFetch })
      await client.connect(t)
      sessionId = t.sessionId!
    })
    after(async () => {
      await client?.close()
      await d?.cleanup()
    })

    const upstreamCalls = async (): Promise<number> => (JSON.parse(textOf(await client.callTool({ name: 'caller', arguments: {} }))) as { calls: number }).calls

    test('the list holds only allowed tools; a denied call is refused and the upstream never sees it (deny beats allow)', async () => {
      assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['caller'])
      const before = await upstreamCalls()
      await assert.rejects(client.callTool({ name: 'echo', arguments: { text: 'x' } }), /forbidden by policy/)
      assert.equal(await upstreamCalls(), before + 1, 'only the caller call itself reached the upstream')
    })

    test('a batch: refused part answered by the gateway, the rest forwarded, the list in it filtered (SSE answer)', async () => {
      const before = await upstreamCalls()
      const r = await authFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-06-18' },
        body: JSON.stringify([
          { jsonrpc: '2.0', id: 'a', method: 'tools/list', params: {} },
          { jsonrpc: '2.0', id: 'b', method: 'tools/call', params: { name: 'echo', arguments: { text: 'no' } } },
          { jsonrpc: '2.0', id: 'c', method: 'tools/call', params: { name: 'caller', arguments: {} } },
        ]),
      })
      assert.equal(r.status, 200)
      assert.equal(r.headers.get('content-type')?.split(';')[0], 'text/event-stream')
      const messages = (await r.text())
        .split('\n\n')
        .map((ev) => ev.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join(''))
        .filter((x) => x !== '')
        .map((x) => JSON.parse(x) as { id: string; result?: Record<string, unknown>; error?: unknown })
      const byId = new Map(messages.map((m) => [m.id, m]))
      assert.deepEqual((byId.get('a')!.result!.tools as { name: string }[]).map((t) => t.name), ['caller'])
      assert.deepEqual(byId.get('b')!.error, { code: -32003, message: 'forbidden by policy' })
      assert.equal(JSON.parse(textOf(byId.get('c')!.result)).calls, before + 1)
      assert.equal(await upstreamCalls(), before + 2, 'echo never reached the upstream')
    })

    test('a policy edit reaches the live session within a second; a broken edit is refused (error and path on stderr) and the last good policy keeps serving', async () => {
      await writeFile(policyFile, POLICY.replace(/ {2}- name: no-echo[\s\S]*$/, ''))
      const took = await waitFor('echo allowed', async () => (await client.listTools()).tools.some((t) => t.name === 'echo'))
      assert.ok(took < 1000, `took ${took} ms`)
      assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'now' } })), 'now')

      await writeFile(policyFile, POLICY.replace('allow: { tools:', 'allow: { toolz:'))
      await waitFor('the refusal on stderr', () => /policy edit refused/.test(stderr()))
      assert.match(stderr(), new RegExp(`policy edit refused: ${policyFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: rules\\[0\\]\\.allow\\.toolz: unknown field \\(did you mean "tools"\\?\\); keeping the last good policy`))
      assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { text: 'still' } })), 'still')
      await writeFile(policyFile, POLICY)
      await waitFor('echo denied again', async () => !(await client.listTools()).tools.some((t) => t.name === 'echo'))
    })
  })
}

test('mcp-pki-gateway refuses to start on an invalid inline policy, naming the path', async () => {
  const d = await makeDeployment()
  try {
    await appendFile(d.serverConfig, 'authorization:\n  default: deny\n  rules:\n    - match: { role: reader, team: x }\n      allow: { tools: ["*"] }\n')
    const child = spawn(process.execPath, [GATEWAY_BIN, '--config', d.serverConfig, '--listen', '127.0.0.1:0', '--upstream', 'http://127.0.0.1:9/mcp'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let err = ''
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    const code = await new Promise<number | null>((r) => child.on('exit', r))
    assert.equal(code, 1)
    assert.match(err, /authorization\.rules\[0\]\.match\.team/)
  } finally {
    await d.cleanup()
  }
})
