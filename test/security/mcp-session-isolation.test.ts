/**
 * MCP session isolation: an MCP session (Mcp-Session-Id) belongs to the key that opened it. Another
 * key cannot use it whatever the spelling of the id, not even on a keep-alive connection where an
 * earlier request was verified, and a verified request is reused only by the McpAuth that verified
 * it (another instance checks again).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import * as http from 'node:http'
import * as net from 'node:net'
import type { AddressInfo } from 'node:net'
import { createClientHandshake, type ClientSession } from '../../src/handshake/client-handshake.js'
import { generateKeyPair, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import { createMcpAuth, mountMcpAuth, type McpRequest } from '../../src/mcp/server.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { createAuthService, type AuthService } from '../../src/transport/auth-service.js'
import { makeParties, TestNonceStore } from '../helpers/fixtures.js'
import { onCleanup } from './helpers/cleanup.js'
import { MCP_BODY, replyCode, send, type Reply } from './helpers/loopback-http.js'
import { sessionSetup } from './helpers/mcp-session.js'
import { handshakeAt, sandbox } from './helpers/sandbox-servers.js'
import { authHeaders } from './helpers/session-calls.js'


type ExpressHandler = (req: McpRequest, res: http.ServerResponse, next: (err?: unknown) => void) => unknown
interface ExpressApp {
  use(...handlers: (string | ExpressHandler)[]): unknown
  post(path: string, ...handlers: ExpressHandler[]): unknown
  all(path: string, ...handlers: ExpressHandler[]): unknown
  listen(port: number, host: string, cb: () => void): http.Server
}
// express ships without type declarations here; this is the part used.
const { default: express } = (await import('express' as string)) as { default: () => ExpressApp }

const AUD = 'http://mcp.rt4.test'

interface McpParties {
  service: AuthService
  keyA: Ed25519KeyPair
  keyB: Ed25519KeyPair
}

function mcpParties(): McpParties {
  const p = makeParties()
  const keyB = generateKeyPair()
  p.serverAllowlist.add(keyB.publicKeyRaw, { role: 'other' })
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(10_000), audience: AUD })
  return { service, keyA: p.client, keyB }
}

/** A session of `key` with `service`, in process. */
async function inProcessSession(service: AuthService, key: Ed25519KeyPair): Promise<ClientSession> {
  const c = createClientHandshake({ keyPair: key, audience: AUD, serverTrust: () => ({}) })
  const r2 = await service.handleMessage(JSON.stringify(c.start()))
  const r4 = await service.handleMessage(JSON.stringify(await c.handleChallenge(r2.body)))
  assert.equal(r4.status, 200, JSON.stringify(r4.body))
  return c.handleComplete(r4.body)
}

/** The request text of a POST /mcp. */
function rawPost(o: { session?: ClientSession; sid?: string; path?: string } = {}): string {
  const path = o.path ?? '/mcp'
  const headers: Record<string, string> = { host: '127.0.0.1', 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(MCP_BODY)) }
  if (o.session) Object.assign(headers, authHeaders(o.session, path, MCP_BODY, 'POST', o.sid ?? ''))
  if (o.sid !== undefined) headers['mcp-session-id'] = o.sid
  return `POST ${path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${MCP_BODY}`
}

/** One keep-alive connection; `exchange` writes requests (pipelined) and reads that many responses. */
async function keepAlive(port: number): Promise<{ exchange(requests: string[]): Promise<Array<{ status: number; body: string }>>; close(): void }> {
  const socket = net.connect({ port, host: '127.0.0.1' })
  await new Promise<void>((r, j) => socket.once('connect', () => r()).once('error', j))
  let buf = Buffer.alloc(0)
  let waiter: (() => void) | undefined
  socket.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d])
    waiter?.()
  })
  onCleanup(() => {
    socket.destroy()
  })
  const parseOne = (): { status: number; body: string } | undefined => {
    const end = buf.indexOf('\r\n\r\n')
    if (end === -1) return undefined
    const head = buf.subarray(0, end).toString()
    const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? '0')
    if (buf.length < end + 4 + len) return undefined
    const body = buf.subarray(end + 4, end + 4 + len).toString()
    buf = buf.subarray(end + 4 + len)
    return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), body }
  }
  return {
    async exchange(requests) {
      socket.write(requests.join(''))
      const out: Array<{ status: number; body: string }> = []
      const deadline = Date.now() + 10_000
      while (out.length < requests.length) {
        const one = parseOne()
        if (one !== undefined) {
          out.push(one)
          continue
        }
        if (Date.now() > deadline || socket.destroyed) assert.fail(`only ${out.length} of ${requests.length} responses`)
        await new Promise<void>((r) => {
          waiter = r
          setTimeout(r, 50)
        })
      }
      return out
    },
    close: () => socket.destroy(),
  }
}

/** The MCP handler under test: records who it ran for; opens MCP session `sess-<n>` when none is named. */
function recordingHandler(seen: string[]): (req: McpRequest, res: http.ServerResponse) => void {
  let n = 0
  return (req, res) => {
    const sid = req.headers['mcp-session-id']
    seen.push(`${req.auth?.clientId.slice(0, 8)}:${typeof sid === 'string' ? sid : '-'}`)
    const text = JSON.stringify({ reached: true, client: req.auth?.clientId })
    const headers: Record<string, string> = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }
    if (sid === undefined) headers['mcp-session-id'] = `sess-${++n}`
    res.writeHead(200, headers).end(text)
  }
}

// From the red-team round 2 (held).
test('Mcp-Session-Id binding holds against another key whatever the spelling (case, duplicates, whitespace, empty)', async () => {
  const s = await sessionSetup()
  const opened = await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof()) })
  assert.equal(opened.status, 200)
  const sid = String(opened.headers['mcp-session-id'])
  assert.equal(s.mcpAuth.sessions.ownerOf(sid), s.session.clientFingerprint)
  // Another allowlisted key.
  const other = await sandbox()
  const text = JSON.parse(await readFile(s.sb.serverAllowlistPath, 'utf8')) as { keys: Record<string, unknown> }
  const otherList = JSON.parse(await readFile(other.serverAllowlistPath, 'utf8')) as { keys: Record<string, unknown> }
  await writeFile(s.sb.serverAllowlistPath, JSON.stringify({ ...text, keys: { ...text.keys, ...otherList.keys } }))
  await s.configured.reloadAllowlist()
  const mallory = await handshakeAt(s.to, other, `http://127.0.0.1:${s.port}`)
  const as = (sessionId: string | string[], signed: string): Promise<Reply> => {
    const proof = createRequestProof({ session: mallory, method: 'POST', target: '/mcp', body: MCP_BODY, mcpSessionId: signed, timestamp: s.clock.ms })
    return send(s.to, { body: MCP_BODY, headers: { authorization: `Bearer ${mallory.token}`, 'mcp-pki-proof': proof, 'mcp-session-id': sessionId } })
  }
  const seenBefore = s.seen.length
  // Mallory's proof signs the Mcp-Session-Id she sends (as node hands it to the server: duplicates
  // joined): the binding, not the proof, must refuse her (404).
  for (const v of [sid, sid.toUpperCase(), ` ${sid} `, [sid, sid], [sid, 'x'], `${sid}, ${sid}`]) {
    const r = await as(v, (Array.isArray(v) ? v.join(', ') : v).trim())
    assert.equal(r.status, 404, `${JSON.stringify(v)}: ${r.text}`)
    assert.match(r.text, /Session not found/)
  }
  // A proof made for no MCP session (or another one) does not carry over to this one (mcp-pki/2).
  const moved = await as(sid, '')
  assert.equal(moved.status, 401, moved.text)
  assert.match(moved.text, /proof_invalid/)
  assert.equal(s.seen.length, seenBefore, 'the handler never saw the other key with that session id')
  // The owner's own id in another case is simply unknown (404), not another session.
  const upper = await send(s.to, { body: MCP_BODY, headers: { ...s.headers(s.proof({ sid: sid.toUpperCase() })), 'mcp-session-id': sid.toUpperCase() } })
  assert.equal(upper.status, 404)
  const own = await send(s.to, { body: MCP_BODY, headers: { ...s.headers(s.proof({ sid })), 'mcp-session-id': sid } })
  assert.equal(own.status, 200)
})

// From the red-team round 4 (held).
test('behind mountMcpAuth, protect of the same McpAuth (Express route, or node:http handler): on one keep-alive connection with pipelined requests, an unauthenticated request and another key\'s MCP session id get nothing; the reused check keeps the key', async () => {
  for (const mount of ['express', 'node:http'] as const) {
    const { service, keyA, keyB } = mcpParties()
    const mcpAuth = createMcpAuth(service)
    const seen: string[] = []
    const inner = mcpAuth.protect(recordingHandler(seen))
    let server: http.Server
    if (mount === 'express') {
      const app = express()
      mountMcpAuth(app, mcpAuth)
      app.all('/mcp', inner)
      server = await new Promise<http.Server>((done) => {
        const s = app.listen(0, '127.0.0.1', () => done(s))
      })
    } else {
      server = http.createServer()
      mountMcpAuth(server, mcpAuth, { handler: inner })
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    }
    onCleanup(() => {
      server.closeAllConnections()
      server.close()
    })
    const port = (server.address() as AddressInfo).port
    const a = await inProcessSession(service, keyA)
    const b = await inProcessSession(service, keyB)
    const conn = await keepAlive(port)
    const [opened] = await conn.exchange([rawPost({ session: a })])
    assert.equal(opened!.status, 200, `${mount}: ${opened!.body}`)
    const rs = await conn.exchange([rawPost(), rawPost({ session: b, sid: 'sess-1' }), rawPost({ session: a, sid: 'sess-1' }), rawPost({ sid: 'sess-1' })])
    assert.deepEqual(rs.map((r) => r.status), [401, 404, 200, 401], `${mount}: ${rs.map((r) => r.body).join(' | ')}`)
    assert.match(rs[0]!.body, /"error":"session_invalid"/)
    const fpA = keyA.fingerprint.slice(0, 8)
    assert.deepEqual(seen, [`${fpA}:-`, `${fpA}:sess-1`], `${mount}: what the handler saw`)
    assert.equal(JSON.parse(rs[2]!.body).client, keyA.fingerprint)
    conn.close()
  }
})

// From the red-team round 4 (held).
test('behind mountMcpAuth of one McpAuth, protect/protectFetch of an McpAuth over another service re-checks and refuses (session_invalid) whichever sessions are sent; the handler never runs', async () => {
  const one = mcpParties()
  const two = mcpParties()
  const authOne = createMcpAuth(one.service)
  const authTwo = createMcpAuth(two.service)
  const seen: string[] = []
  const app = express()
  mountMcpAuth(app, authOne)
  app.all('/mcp', authTwo.protect(recordingHandler(seen)))
  app.all('/mcp/fetch', authTwo.protectFetch(() => {
    seen.push('fetch')
    return Response.json({ reached: true })
  }))
  const server = await new Promise<http.Server>((done) => {
    const s = app.listen(0, '127.0.0.1', () => done(s))
  })
  onCleanup(() => {
    server.closeAllConnections()
    server.close()
  })
  const to = { host: '127.0.0.1', port: (server.address() as AddressInfo).port }
  const s1 = await inProcessSession(one.service, one.keyA)
  const s2 = await inProcessSession(two.service, two.keyA)
  for (const path of ['/mcp', '/mcp/fetch']) {
    const r1 = await send(to, { path, body: MCP_BODY, headers: authHeaders(s1, path) })
    assert.equal(r1.status, 401, r1.text)
    assert.equal(replyCode(r1), 'session_invalid', `${path}: a session of the front instance is not one of the inner`)
    const r2 = await send(to, { path, body: MCP_BODY, headers: authHeaders(s2, path) })
    assert.equal(r2.status, 401, r2.text)
    assert.equal(replyCode(r2), 'session_invalid', `${path}: a session of the inner instance is refused in front`)
  }
  assert.deepEqual(seen, [])
})
