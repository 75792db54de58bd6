/**
 * `--workers 2` with the real CLIs: the replay memory and revocation are shared by every worker,
 * a killed worker is replaced while the other keeps serving, SIGTERM stops them all.
 * Requests go over fresh connections (no keep-alive) so the cluster's round-robin spreads them;
 * every response names its worker in X-MCP-PKI-Worker.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, describe, test } from 'node:test'
import { createClientHandshake } from '../../src/handshake/client-handshake.js'
import type { Ed25519KeyPair } from '../../src/keys/key-pair.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { sessionHeaders } from '../../src/server/whoami.js'
import { makeDeployment, GATEWAY_BIN, PLAIN_SERVER } from '../mcp/fixtures/deployment.js'

const DIST = resolve(import.meta.dirname, '..', '..', 'dist', 'bin')
const SERVER_BIN = join(DIST, 'mcp-pki-server.js')
const ALLOWLIST_BIN = join(DIST, 'mcp-allowlist.js')
const dirs: string[] = []
const children: ChildProcess[] = []
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function freePort(): Promise<number> {
  const s = net.createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  const port = (s.address() as net.AddressInfo).port
  await new Promise((r) => s.close(r))
  return port
}

interface Reply {
  status: number
  worker: string
  body: unknown
}

/**
 * One request on its own connection (agent: false), so round-robin can pick any worker. It fails
 * after `timeoutMs` instead of waiting for ever (see the killed-worker test for why one can hang).
 */
function request(url: string, method: string, body?: unknown, headers: Record<string, string> = {}, timeoutMs = 15_000): Promise<Reply> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
  return new Promise((resolveReply, reject) => {
    const req = http.request(url, { method, agent: false, headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } }, (res) => {
      let data = ''
      res.on('data', (c: Buffer) => (data += c.toString()))
      res.on('end', () => {
        let parsed: unknown = data
        try {
          parsed = JSON.parse(data)
        } catch {
          // not JSON (an SSE stream): keep the text
        }
        resolveReply({ status: res.statusCode ?? 0, worker: String(res.headers['x-mcp-pki-worker'] ?? ''), body: parsed })
      })
    })
    req.on('error', reject)
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer to ${method} ${url} in ${timeoutMs} ms`)))
    req.end(text)
  })
}

/** Sends `send()` until a reply comes from a worker other than `not` (round-robin gets there fast). */
async function fromAnotherWorker(not: string, send: () => Promise<Reply>): Promise<Reply> {
  for (let i = 0; i < 50; i++) {
    const r = await send()
    if (r.worker !== not) return r
  }
  throw new Error(`every reply came from worker ${not}`)
}

interface Cluster {
  child: ChildProcess
  stderr(): string
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>
  exited: Promise<number | null>
}

function startCluster(bin: string, args: string[], cwd: string, readyOn: 'stdout' | 'stderr'): Promise<Cluster> {
  const child = spawn(process.execPath, [bin, ...args], { cwd, env: { ...process.env, MCP_DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] })
  children.push(child)
  let out = ''
  let err = ''
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  const waitFor = async (re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> => {
    const end = Date.now() + timeoutMs
    for (;;) {
      const m = re.exec(out + err)
      if (m) return m
      if (child.exitCode !== null || Date.now() > end) throw new Error(`no ${String(re)}; stdout: ${out}\nstderr: ${err}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  const ready = readyOn === 'stdout' ? /listening on http/ : /mcp-pki-gateway: listening on/
  return waitFor(ready).then(() => ({ child, stderr: () => err, waitFor, exited }))
}

/** Messages 1 and 2 over fresh connections; returns message 3 (not yet sent). */
async function messageThree(authUrl: string, keyPair: Ed25519KeyPair): Promise<unknown> {
  const client = createClientHandshake({ keyPair, audience: new URL(authUrl).origin, serverTrust: () => ({ role: 'mcp_server' }) })
  const r2 = await request(authUrl, 'POST', client.start())
  assert.equal(r2.status, 200, JSON.stringify(r2.body))
  return client.handleChallenge(r2.body)
}

async function handshake(authUrl: string, keyPair: Ed25519KeyPair): Promise<Reply> {
  return request(authUrl, 'POST', await messageThree(authUrl, keyPair))
}

describe('mcp-pki-server --workers 2 (in-memory replay store in the primary)', () => {
  let sb: Sandbox
  let srv: Cluster
  let base: string

  test('starts two workers on one port; /health answers from both', async () => {
    assert.ok(existsSync(SERVER_BIN), `${SERVER_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
    const dir = await mkdtemp(join(tmpdir(), 'mcp-workers-'))
    dirs.push(dir)
    const port = await freePort()
    sb = await createSandbox(dir, { server: { transport: { port } } })
    srv = await startCluster(SERVER_BIN, ['--workers', '2', '--config', sb.serverConfigPath], dir, 'stdout')
    base = `http://127.0.0.1:${port}`
    const seen = new Set<string>()
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const r = await request(`${base}/health`, 'GET')
      assert.equal(r.status, 200)
      seen.add(r.worker)
    }
    assert.deepEqual([...seen].sort(), ['1', '2'])
  })

  test('message 3 accepted by one worker is refused as a replay by the other', async () => {
    const m3 = await messageThree(`${base}/auth`, sb.clientKey)
    const first = await request(`${base}/auth`, 'POST', m3)
    assert.equal(first.status, 200, JSON.stringify(first.body))
    const again = await fromAnotherWorker(first.worker, () => request(`${base}/auth`, 'POST', m3))
    assert.notEqual(again.worker, first.worker)
    assert.equal(again.status, 401, JSON.stringify(again.body))
    assert.equal((again.body as { error: { code: string } }).error.code, 'replay_detected')
  })

  test('a key removed from the allowlist file is refused by every worker', async () => {
    assert.equal((await handshake(`${base}/auth`, sb.clientKey)).status, 200)
    const r = spawnSync(process.execPath, [ALLOWLIST_BIN, 'remove', '--config', sb.serverConfigPath, '--fingerprint', sb.clientKey.fingerprint], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    const refusedBy = new Set<string>()
    const end = Date.now() + 30_000
    while (refusedBy.size < 2 && Date.now() < end) {
      const m3 = await messageThree(`${base}/auth`, sb.clientKey).catch(() => undefined)
      if (m3 === undefined) continue
      const reply = await request(`${base}/auth`, 'POST', m3)
      if (reply.status === 401) refusedBy.add(reply.worker)
      else await new Promise((res) => setTimeout(res, 100)) // that worker has not polled the file yet
    }
    assert.deepEqual([...refusedBy].sort(), ['1', '2'])
  })

  test('a killed worker is replaced, the other keeps serving; SIGTERM stops them all with exit 0', async () => {
    const victim = await srv.waitFor(/worker 1 \(pid (\d+)\) listening/)
    process.kill(Number(victim[1]), 'SIGKILL')
    // The other worker answers while the replacement starts. A connection the primary handed to
    // the victim just as it died is never answered (Node's round-robin cluster keeps it open:
    // nodejs/node-v0.x-archive#7928, docs/operations.md says so), so a client times out and retries.
    let during: Reply | undefined
    for (let attempt = 0; attempt < 3 && during === undefined; attempt++) {
      during = await request(`${base}/health`, 'GET', undefined, {}, 3_000).catch(() => undefined)
    }
    assert.equal(during?.status, 200)
    await srv.waitFor(/worker 1 \(pid \d+\) exited \(signal SIGKILL\); started worker 3/)
    await srv.waitFor(/worker 3 \(pid \d+\) listening/)
    const seen = new Set<string>()
    for (let i = 0; i < 40 && seen.size < 2; i++) seen.add((await request(`${base}/health`, 'GET')).worker)
    assert.deepEqual([...seen].sort(), ['2', '3'])
    srv.child.kill('SIGTERM')
    assert.equal(await srv.exited, 0, srv.stderr())
    assert.match(srv.stderr(), /SIGTERM: asking 2 workers to finish/)
  })
})

describe('mcp-pki-server --workers 2 with auth.nonce_store redis', () => {
  test('a replayed message 3 and a revocation through Redis reach every worker', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-workers-redis-'))
    dirs.push(dir)
    const port = await freePort()
    const prefix = `mcp-pki-workers-test-${process.pid}-${Date.now()}:`
    const sb = await createSandbox(dir, { server: { transport: { port }, auth: { nonce_store: { type: 'redis', url: 'redis://127.0.0.1:6379', key_prefix: prefix } } } })
    const srv = await startCluster(SERVER_BIN, ['--workers', '2', '--config', sb.serverConfigPath], dir, 'stdout')
    const base = `http://127.0.0.1:${port}`
    const m3 = await messageThree(`${base}/auth`, sb.clientKey)
    const first = await request(`${base}/auth`, 'POST', m3)
    assert.equal(first.status, 200, JSON.stringify(first.body))
    const again = await fromAnotherWorker(first.worker, () => request(`${base}/auth`, 'POST', m3))
    assert.equal(again.status, 401, JSON.stringify(again.body))

    const r = spawnSync(process.execPath, [ALLOWLIST_BIN, 'revoke', '--config', sb.serverConfigPath, '--fingerprint', sb.clientKey.fingerprint, '--reason', 'test'], { encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    const refusedBy = new Set<string>()
    const end = Date.now() + 30_000
    while (refusedBy.size < 2 && Date.now() < end) {
      const reply = await handshake(`${base}/auth`, sb.clientKey).catch(() => undefined)
      if (reply?.status === 401) refusedBy.add(reply.worker)
      else await new Promise((res) => setTimeout(res, 100))
    }
    assert.deepEqual([...refusedBy].sort(), ['1', '2'])
    srv.child.kill('SIGTERM')
    assert.equal(await srv.exited, 0, srv.stderr())
    // Our keys only (the Redis is shared).
    const keys = spawnSync('redis-cli', ['--scan', '--pattern', `${prefix}*`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)
    if (keys.length > 0) spawnSync('redis-cli', ['del', ...keys])
  })
})

describe('mcp-pki-gateway --workers 2', () => {
  test('a request proof used on one worker is refused as a replay by the other', async () => {
    assert.ok(existsSync(GATEWAY_BIN), `${GATEWAY_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
    const d = await makeDeployment()
    dirs.push(d.dir)
    const up = spawn(process.execPath, [PLAIN_SERVER, 'http'], { stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(up)
    const upstreamUrl = await new Promise<string>((res, rej) => {
      let text = ''
      up.stdout!.on('data', (c: Buffer) => {
        text += c.toString()
        const m = /listening (http:\/\/\S+)/.exec(text)
        if (m) res(m[1]!)
      })
      up.once('exit', () => rej(new Error('upstream exited')))
    })
    const port = await freePort()
    const gw = await startCluster(GATEWAY_BIN, ['--config', d.serverConfig, '--upstream', upstreamUrl, '--listen', `127.0.0.1:${port}`, '--workers', '2'], d.dir, 'stderr')
    const base = `http://127.0.0.1:${port}`
    const authReply = await handshake(`${base}/auth`, d.client)
    assert.equal(authReply.status, 200, JSON.stringify(authReply.body))
    const client = createClientHandshake({ keyPair: d.client, audience: base, serverTrust: () => ({ role: 'mcp_server' }) })
    const r2 = await request(`${base}/auth`, 'POST', client.start())
    const r4 = await request(`${base}/auth`, 'POST', await client.handleChallenge(r2.body))
    const session = client.handleComplete(r4.body)

    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } })
    const headers = sessionHeaders(session, 'POST', '/mcp', body)
    const first = await request(`${base}/mcp`, 'POST', body, headers)
    assert.equal(first.status, 200, JSON.stringify(first.body))
    const again = await fromAnotherWorker(first.worker, () => request(`${base}/mcp`, 'POST', body, headers))
    assert.notEqual(again.worker, first.worker)
    assert.equal(again.status, 401, JSON.stringify(again.body))
    assert.match(JSON.stringify(again.body), /replay/)
    gw.child.kill('SIGTERM')
    assert.equal(await gw.exited, 0, gw.stderr())
    up.kill('SIGTERM')
  })
})
