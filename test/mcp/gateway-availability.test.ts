/**
 * mcp-pki-gateway under faults and load: upstream keep-alive connections closed under its feet,
 * restarts and a second gateway in the middle of an MCP session (sealed Mcp-Session-Id), and
 * idle/slowloris connections filling its connection table.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import * as http from 'node:http'
import * as net from 'node:net'
import type { AddressInfo } from 'node:net'
import { after, test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { createAuthFetch, createAuthFetchFromConfig } from '../../src/mcp/client.js'
import { createMcpGateway } from '../../src/mcp/gateway.js'
import { createMcpAuth } from '../../src/mcp/server.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { holdConnections } from '../helpers/connection-attack.js'
import { makeParties, TestNonceStore } from '../helpers/fixtures.js'
import { makeDeployment, GATEWAY_BIN, PLAIN_SERVER, type Deployment } from './fixtures/deployment.js'
import { textOf } from './fixtures/harness.js'

const cleanups: Array<() => unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const MCP_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' }

/**
 * An upstream that closes each keep-alive connection `idleMs` after its last answer without
 * announcing it (no `Keep-Alive: timeout` hint, as many non-Node servers do).
 */
async function closingUpstream(idleMs: number): Promise<{ url: string; served: () => number }> {
  let served = 0
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      served++
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}')
    })
  })
  server.keepAliveTimeout = 0 // no hint, no timer of Node's: this upstream closes by itself
  server.on('connection', (socket: net.Socket) => {
    let idle: NodeJS.Timeout | undefined
    const arm = (): void => {
      clearTimeout(idle)
      idle = setTimeout(() => socket.destroy(), idleMs)
    }
    socket.on('data', () => clearTimeout(idle))
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.socket === socket) res.once('finish', arm)
    })
    socket.once('close', () => clearTimeout(idle))
  })
  server.setMaxListeners(0)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  cleanups.push(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, served: () => served }
}

/** A Node upstream with a short `keepAliveTimeout` (it announces `Keep-Alive: timeout=N`). */
async function nodeUpstream(keepAliveTimeout: number): Promise<{ url: string; served: () => number }> {
  let served = 0
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      served++
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}')
    })
  })
  server.keepAliveTimeout = keepAliveTimeout
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  cleanups.push(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`, served: () => served }
}

for (const [label, make, gaps] of [
  ['a Node upstream (keepAliveTimeout 2 s, announced)', () => nodeUpstream(2_000), [1_900, 1_950, 1_990]],
  ['an upstream closing idle connections after 1 s unannounced', () => closingUpstream(1_000), [900, 950, 980, 990, 1_000]],
] as const) {
  test(`${label}: bursts of 100 calls after idle gaps just under its keep-alive timeout — no call fails`, async () => {
    await burstsThroughGateway(await make(), gaps)
  })
}

async function burstsThroughGateway(upstream: { url: string; served: () => number }, gaps: readonly number[]): Promise<void> {
  const p = makeParties()
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(100_000) })
  const lines: string[] = []
  const gateway = createMcpGateway({ mcpAuth: createMcpAuth(service), upstream: { url: upstream.url }, log: (l) => lines.push(l) })
  const front = http.createServer(gateway.handler)
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()))
  cleanups.push(() => {
    front.closeAllConnections()
    front.close()
  })
  const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}/mcp`
  const authFetch = createAuthFetch({ url, keyPair: p.client, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }) })
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' })
  const burst = async (): Promise<number[]> =>
    Promise.all(
      Array.from({ length: 100 }, () =>
        authFetch(url, { method: 'POST', headers: MCP_HEADERS, body }).then(
          async (r) => {
            await r.arrayBuffer()
            return r.status
          },
          () => 0,
        ),
      ),
    )
  const statuses: number[] = [...(await burst())]
  for (const gap of gaps) {
    await sleep(gap)
    statuses.push(...(await burst()))
  }
  const failed = statuses.filter((s) => s !== 200)
  assert.equal(failed.length, 0, `${failed.length} of ${statuses.length} calls failed (${failed.join(',')}); gateway log: ${lines.slice(0, 5).join(' | ')}`)
  assert.equal(upstream.served(), statuses.length, 'each call reached the upstream exactly once')
}

// ------------------------------------------------------------------ the built CLI

function spawnGateway(d: Deployment, args: string[]): Promise<{ url: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [GATEWAY_BIN, '--config', d.serverConfig, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })
    let err = ''
    const timer = setTimeout(() => reject(new Error(`gateway did not start; stderr: ${err}`)), 15_000)
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString()
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(err)
      if (m) {
        clearTimeout(timer)
        resolve({ url: m[1]!, child })
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`gateway exited with ${code}; stderr: ${err}`))
    })
  })
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  child.kill('SIGTERM')
  await exited
}

function startUpstream(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PLAIN_SERVER, 'http'], { stdio: ['ignore', 'pipe', 'inherit'] })
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL')
    })
    let out = ''
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /listening (http:\/\/\S+)/.exec(out)
      if (m) resolve(m[1]!)
    })
    child.on('exit', (code) => reject(new Error(`upstream exited with ${code}`)))
  })
}

async function callEcho(client: Client, text: string): Promise<string> {
  const r = await client.callTool({ name: 'echo', arguments: { text } })
  assert.notEqual(r.isError, true, textOf(r))
  return textOf(r)
}

test('an MCP session survives a gateway restart and works through a second gateway with the same server key; another key or an edited id gets 404', async () => {
  assert.ok(existsSync(GATEWAY_BIN), `${GATEWAY_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  const d = await makeDeployment()
  cleanups.push(() => d.cleanup())
  const upstream = await startUpstream()
  const first = await spawnGateway(d, ['--listen', '127.0.0.1:0', '--upstream', upstream])
  const authUrl = (u: string): string => u.replace(/\/mcp$/, '/auth')
  const config = await d.writeClientConfig('client', { serverUrl: authUrl(first.url) })
  const authFetch = await createAuthFetchFromConfig(config, first.url, { interactive: false })
  const client = new Client({ name: 'gw-client', version: '1.0.0' })
  const transport = new StreamableHTTPClientTransport(new URL(first.url), { fetch: authFetch })
  await client.connect(transport)
  cleanups.push(() => client.close())
  assert.equal(await callEcho(client, 'before'), 'before')
  const sid = transport.sessionId!
  assert.match(sid, /^g1\.[A-Za-z0-9_-]+$/, 'the client sees a sealed id, not the upstream’s')

  // Restart on the same address: nothing of the binding is kept in memory, the session goes on.
  await stop(first.child)
  const restarted = await spawnGateway(d, ['--listen', new URL(first.url).host, '--upstream', upstream])
  assert.equal(restarted.url, first.url)
  // A restart takes longer than the client's estimate of the server clock is off (up to a handshake
  // round trip, which a loaded test machine stretches): a proof dated before the new replay memory
  // began is refused without a re-send (PROTOCOL.md §9), so the first call waits that out.
  await new Promise((r) => setTimeout(r, 1500))
  assert.equal(await callEcho(client, 'after restart'), 'after restart')

  // A second gateway (another port, same config): the same MCP session through it.
  const second = await spawnGateway(d, ['--listen', '127.0.0.1:0', '--upstream', upstream])
  const config2 = await d.writeClientConfig('client2', { serverUrl: authUrl(second.url), keyPair: d.client })
  const authFetch2 = await createAuthFetchFromConfig(config2, second.url, { interactive: false })
  const call = (text: string): string => JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'echo', arguments: { text } } })
  const viaSecond = await authFetch2(second.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, body: call('second gateway') })
  const text = await viaSecond.text()
  assert.equal(viaSecond.status, 200, text)
  assert.match(text, /second gateway/)

  // Another allowlisted key presenting the id, and an edited id: 404, as for an unknown session.
  const other = generateKeyPair()
  const { updateAllowlistFile } = await import('../../src/allowlist/allowlist-file.js')
  await updateAllowlistFile(`${d.dir}/keys/server_allowlist.json`, (list) => void list.add({ publicKeyRaw: other.publicKeyRaw, metadata: { role: 'trusted_client' } }))
  const otherConfig = await d.writeClientConfig('other', { serverUrl: authUrl(second.url), keyPair: other })
  let otherStatus = 0
  for (let i = 0; i < 40 && otherStatus !== 404; i++) {
    // the gateway picks up the allowlist edit within its poll interval
    const f = await createAuthFetchFromConfig(otherConfig, second.url, { interactive: false })
    otherStatus = await f(second.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': sid }, body: call('x') }).then(
      async (r) => {
        await r.arrayBuffer()
        return r.status
      },
      () => 0,
    )
    if (otherStatus !== 404) await sleep(250)
  }
  assert.equal(otherStatus, 404, 'another key’s call on the session')
  const edited = sid.slice(0, -2) + (sid.endsWith('AA') ? 'BB' : 'AA')
  for (const bad of [edited, 'g1.' + 'A'.repeat(5000), 'not-sealed']) {
    const r = await authFetch2(second.url, { method: 'POST', headers: { ...MCP_HEADERS, 'mcp-session-id': bad }, body: call('x') })
    await r.arrayBuffer()
    assert.equal(r.status, 404, bad.slice(0, 20))
  }
  assert.equal(await callEcho(client, 'still mine'), 'still mine')
  await stop(restarted.child)
  await stop(second.child)
})

test('the gateway applies transport.max_connections with a per-address cap and lets the oldest idle connection give way: idle and slowloris connections from 8 addresses do not keep /health or a handshake out', async () => {
  assert.ok(existsSync(GATEWAY_BIN), `${GATEWAY_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  const d = await makeDeployment()
  cleanups.push(() => d.cleanup())
  const text = await readFile(d.serverConfig, 'utf8')
  await writeFile(d.serverConfig, text.replace('  port: 0\n', '  port: 0\n  max_connections: 20\n  timeout: 2\n'))
  const upstream = await startUpstream()
  const gw = await spawnGateway(d, ['--listen', '127.0.0.1:0', '--upstream', upstream])
  const port = Number(new URL(gw.url).port)
  const addresses = Array.from({ length: 8 }, (_, i) => `127.0.1.${10 + i}`)
  const attack = holdConnections(port, addresses, 10) // 80 wanted; the cap is 5 per address, 20 in all
  cleanups.push(() => attack.stop())
  await sleep(500)
  assert.ok(attack.open() >= 20, `the attack holds connections (${attack.open()})`)

  // A sixth connection from one attacking address is refused (per-address cap).
  const health = (localAddress: string): Promise<number | string> =>
    new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/health', localAddress, agent: false }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')))
      req.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`))
    })
  const statuses: Array<number | string> = []
  for (let i = 0; i < 20; i++) statuses.push(await health('127.0.0.1'))
  assert.deepEqual(statuses.filter((s) => s !== 200), [], 'legitimate /health during the attack')
  const config = await d.writeClientConfig('client', { serverUrl: gw.url.replace(/\/mcp$/, '/auth') })
  const authFetch = await createAuthFetchFromConfig(config, gw.url, { interactive: false })
  const client = new Client({ name: 'gw-client', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(gw.url), { fetch: authFetch }))
  cleanups.push(() => client.close())
  assert.equal(await callEcho(client, 'through the attack'), 'through the attack')

  // A slowloris head is cut off: 408 within the request timeout (2 s here), then closed. The attack
  // stops first: while it presses on the cap, the slow head (idle to the guard: no request yet) may
  // be the connection that gives way, closed without an answer, which is the cap's work, not the timeout's.
  attack.stop()
  await sleep(200)
  const slow = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.2.1' })
  let answer = ''
  let closed = false
  slow.on('data', (c: Buffer) => (answer += c.toString('latin1')))
  slow.on('error', () => undefined)
  slow.on('close', () => (closed = true))
  slow.write('GET /health HTTP/1.1\r\nhost: x\r\n')
  const drip = setInterval(() => slow.writable && slow.write('x-a: b\r\n'), 300)
  cleanups.push(() => {
    clearInterval(drip)
    slow.destroy()
  })
  const t0 = Date.now()
  while (!closed && Date.now() - t0 < 15_000) await sleep(50)
  clearInterval(drip)
  assert.ok(closed, 'the slow sender was disconnected')
  assert.match(answer, /^HTTP\/1\.1 408/)
  await stop(gw.child)
})
