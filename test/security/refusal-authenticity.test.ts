/**
 * Refusal authenticity (docs/PROTOCOL.md §8): createAuthFetch used to answer any `401` but
 * proof_stale with a new handshake and one re-send, and those answers were not authenticated. A man
 * in the middle (plain HTTP) could let the server run a request, answer the client a forged
 * `session_expired` (or `session_revoked`, `proof_invalid`, `session_invalid` …), and have the
 * request run twice through a new session. Now the server MACs every refusal of a request whose
 * proof verified (`MCP-PKI-Refusal: c=<code>, m=<MAC>`), and the client renews and re-sends only on
 * a verified `session_expired`; every other 401 is handed back and the session dropped.
 * Real SDK client and server over 127.0.0.1; the man in the middle is the fetch under createAuthFetch.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { createAuthFetch, type AuthFetch, type FetchFunction } from '../../src/mcp/client.js'
import { REFUSAL_HEADER } from '../../src/protocol/constants.js'
import { computeRefusalMac, refusalHeader, verifiedRefusal } from '../../src/session/refusal-answer.js'
import { ticketKeyFrom, type TicketKey } from '../../src/session/ticket.js'
import { VECTORS_PATH } from '../vectors/generate.js'
import { makeParties, TestClock, TestNonceStore, type Parties } from '../helpers/fixtures.js'
import { connectClient, startProtectedServer, whoami, type TestMcpServer } from '../mcp/fixtures/harness.js'

const cleanups: Array<() => Promise<unknown> | unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {})
})

interface Sent {
  url: string
  init: RequestInit | undefined
  headers: Headers
}

interface Wire {
  /** Set to forge the answer to the next tools/call after the server ran it: [code, MCP-PKI-Refusal value or undefined]. */
  forge: ((sent: Sent) => Promise<[string, string | undefined]> | [string, string | undefined]) | undefined
  /** Every answer from the server to an MCP request. */
  answers: Array<{ status: number; code: string | undefined; refusal: string | null; proof: string | null }>
  /** Requests that reached the server carrying tools/call. */
  toolCallsSent: number
  /** Where requests for the client's origin go (a restart moves it). */
  origin: string | undefined
}

const b64 = (n: number): string => randomBytes(n).toString('base64url')
const proofMacOf = (proof: string): Buffer => Buffer.from(/m=([A-Za-z0-9_-]{43})$/.exec(proof)![1]!, 'base64url')

function reroute(input: string | URL | Request, origin: string | undefined): string | URL | Request {
  if (origin === undefined) return input
  const u = new URL(input instanceof Request ? input.url : String(input))
  return `${origin}${u.pathname}${u.search}`
}

/** A man in the middle on the MCP requests: forwards to the server, optionally forges the answer. */
function manInTheMiddle(): { wire: Wire; fetch: FetchFunction; handshakeFetch: FetchFunction } {
  const wire: Wire = { forge: undefined, answers: [], toolCallsSent: 0, origin: undefined }
  const fetch: FetchFunction = async (input, init) => {
    const body = typeof init?.body === 'string' ? init.body : init?.body instanceof Uint8Array ? Buffer.from(init.body).toString() : ''
    const headers = new Headers(init?.headers)
    const isCall = body.includes('"tools/call"')
    if (isCall) wire.toolCallsSent++
    const res = await globalThis.fetch(reroute(input, wire.origin), init)
    const code = res.status === 401 ? ((await res.clone().json()) as { error?: string }).error : undefined
    wire.answers.push({ status: res.status, code, refusal: res.headers.get(REFUSAL_HEADER), proof: headers.get('mcp-pki-proof') })
    if (isCall && wire.forge !== undefined && res.status === 200) {
      const forge = wire.forge
      wire.forge = undefined
      await res.body?.cancel()
      const [forgedCode, forged] = await forge({ url: String(input), init, headers })
      const h: Record<string, string> = { 'content-type': 'application/json', 'www-authenticate': 'Bearer error="invalid_token"' }
      if (forged !== undefined) h[REFUSAL_HEADER] = forged
      return new Response(JSON.stringify({ error: forgedCode, error_description: 'forged' }), { status: 401, headers: h })
    }
    return res
  }
  const handshakeFetch: FetchFunction = (input, init) => globalThis.fetch(reroute(input, wire.origin), init)
  return { wire, fetch, handshakeFetch }
}

interface Setup {
  p: Parties
  s: TestMcpServer
  wire: Wire
  authFetch: AuthFetch
}

async function startServer(p: Parties, serverClock?: TestClock, sessionTtl?: number, restart?: { ticketKey: TicketKey; audience: string }): Promise<TestMcpServer> {
  const now = serverClock?.now ?? Date.now
  const s = await startProtectedServer({
    keyPair: p.server,
    ...(restart === undefined ? {} : { ticketKeys: [restart.ticketKey], audience: restart.audience }),
    allowlist: p.serverAllowlist,
    nonceStore: new TestNonceStore(10_000, now),
    ...(serverClock === undefined ? {} : { clock: serverClock.now }),
    ...(sessionTtl === undefined ? {} : { sessionTtl }),
  })
  cleanups.push(() => s.close())
  return s
}

async function setup(o: { serverClock?: TestClock; clientClock?: TestClock; sessionTtl?: number } = {}): Promise<Setup> {
  const p = makeParties()
  const s = await startServer(p, o.serverClock, o.sessionTtl)
  const { wire, fetch, handshakeFetch } = manInTheMiddle()
  const authFetch = createAuthFetch({
    url: s.url,
    keyPair: p.client,
    serverTrust: createServerTrust({ allowlist: p.clientAllowlist }),
    retryAttempts: 0,
    fetch,
    handshakeFetch,
    ...(o.clientClock === undefined ? {} : { clock: o.clientClock.now }),
  })
  return { p, s, wire, authFetch }
}

test('a forged refusal after the server ran the request is never re-sent: each tool call ran once, the session is dropped', async () => {
  const { p, s, wire, authFetch } = await setup()
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  const codes = ['session_expired', 'session_revoked', 'proof_invalid', 'session_invalid', 'replay_detected']
  const forms: Array<[string, (code: string, sent: Sent) => string | undefined]> = [
    ['no MCP-PKI-Refusal header', () => undefined],
    ['c= and a random MAC', (code) => `c=${code}, m=${b64(32)}`],
    ['a MAC under a guessed (zero) key over the real refused proof', (code, sent) => `c=${code}, m=${computeRefusalMac(Buffer.alloc(32), code, proofMacOf(sent.headers.get('mcp-pki-proof')!)).toString('base64url')}`],
    ['garbage', () => 'c=***, m=***'],
  ]
  let handshakes = authFetch.handshakes
  for (const code of codes) {
    for (const [name, form] of forms) {
      const what = `${code}, ${name}`
      const before = s.calls.whoami
      const sentBefore = wire.toolCallsSent
      wire.forge = (sent) => [code, form(code, sent)]
      await assert.rejects(whoami(client), (err: unknown) => err instanceof Error && err.message.includes(code), what)
      assert.equal(s.calls.whoami, before + 1, `${what}: the tool ran exactly once`)
      assert.equal(wire.toolCallsSent, sentBefore + 1, `${what}: the client did not send the request again`)
      assert.equal(authFetch.handshakes, handshakes, `${what}: and made no new handshake to send it again`)
      assert.equal(authFetch.current, undefined, `${what}: the refused session is dropped`)
      // The next call runs a new handshake and goes through (the MCP session is bound to the key, not the token).
      assert.equal((await whoami(client)).clientId, p.client.fingerprint)
      assert.equal(authFetch.handshakes, ++handshakes, `${what}: the next call handshakes afresh`)
      assert.equal(s.calls.whoami, before + 2)
    }
  }
})

test('a genuine refusal of another code, or of another request, is not taken for session_expired', async () => {
  const { s, wire, authFetch } = await setup()
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  // Made with the real session key (as if the man in the middle had it for every code but the one that re-sends).
  const cases: Array<[string, (sent: Sent) => [string, string]]> = [
    ['an authenticated replay_detected presented as session_expired', (sent) => ['session_expired', refusalHeader(authFetch.current!.sessionKey, 'replay_detected', /m=([A-Za-z0-9_-]{43})$/.exec(sent.headers.get('mcp-pki-proof')!)![1]!).replace('c=replay_detected', 'c=session_expired')]],
    ['an authenticated session_expired for another proof', () => ['session_expired', refusalHeader(authFetch.current!.sessionKey, 'session_expired', b64(32))]],
    ['an authenticated session_revoked for this proof', (sent) => ['session_revoked', refusalHeader(authFetch.current!.sessionKey, 'session_revoked', /m=([A-Za-z0-9_-]{43})$/.exec(sent.headers.get('mcp-pki-proof')!)![1]!)]],
  ]
  for (const [name, forge] of cases) {
    const before = s.calls.whoami
    const sentBefore = wire.toolCallsSent
    wire.forge = forge
    await assert.rejects(whoami(client), name)
    assert.equal(s.calls.whoami, before + 1, `${name}: ran once`)
    assert.equal(wire.toolCallsSent, sentBefore + 1, `${name}: not sent again`)
    await whoami(client)
  }
})

test('a request the server ran, replayed by the man in the middle after the session expired, gets an authenticated replay_detected, not session_expired', async () => {
  const serverClock = new TestClock()
  const clientClock = new TestClock(serverClock.ms)
  const { s, wire, authFetch } = await setup({ serverClock, clientClock, sessionTtl: 10 })
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  const before = s.calls.whoami
  const sentBefore = wire.toolCallsSent
  const key = Buffer.from(authFetch.current!.sessionKey)
  let replayed: { status: number; code: string | undefined; refusal: string | null } | undefined
  wire.forge = async (sent) => {
    // The server ran it; now it expires, and the very same request is sent again.
    serverClock.advance(11)
    const again = await globalThis.fetch(sent.url, sent.init)
    replayed = { status: again.status, code: ((await again.json()) as { error?: string }).error, refusal: again.headers.get(REFUSAL_HEADER) }
    return ['session_expired', replayed.refusal ?? undefined]
  }
  await assert.rejects(whoami(client), /replay_detected|session_expired/)
  assert.equal(replayed?.status, 401)
  assert.equal(replayed?.code, 'replay_detected', 'the sequence number was used when the server ran it')
  const proof = wire.answers.filter((a) => a.proof !== null).at(-1)!.proof!
  assert.equal(verifiedRefusal(key, proof, replayed?.refusal), 'replay_detected', 'authenticated, and says replay_detected')
  assert.equal(s.calls.whoami, before + 1, 'the tool ran once')
  assert.equal(wire.toolCallsSent, sentBefore + 1, 'the client did not send it again')
})

test('a genuine expiry (the server clock ahead of the client view): authenticated session_expired, one renewal, the tool runs once', async () => {
  const serverClock = new TestClock()
  const clientClock = new TestClock(serverClock.ms)
  const { p, s, wire, authFetch } = await setup({ serverClock, clientClock, sessionTtl: 10 })
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  const old = authFetch.current!
  const key = Buffer.from(old.sessionKey)
  serverClock.advance(11) // the client still believes its session fresh
  const before = s.calls.whoami
  const sentBefore = wire.toolCallsSent
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  assert.equal(s.calls.whoami, before + 1, 'ran once')
  assert.equal(wire.toolCallsSent, sentBefore + 2, 'refused once (expired), then sent once through the new session')
  assert.equal(authFetch.handshakes, 2)
  assert.notEqual(authFetch.current, old)
  const refused = wire.answers.find((a) => a.status === 401)!
  assert.equal(refused.code, 'session_expired')
  assert.match(refused.refusal ?? '', /^c=session_expired, m=[A-Za-z0-9_-]{43}$/)
  assert.equal(verifiedRefusal(key, refused.proof!, refused.refusal), 'session_expired')
})

test('renewal ahead of expiry: a session about to expire in the client view is renewed before sending, no 401 at all', async () => {
  const serverClock = new TestClock()
  const clientClock = new TestClock(serverClock.ms)
  const { s, wire, authFetch } = await setup({ serverClock, clientClock, sessionTtl: 10 })
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  // 6 s of 10: inside the renewal margin (half the lifetime), not yet expired at the server.
  serverClock.advance(6)
  clientClock.advance(6)
  const before = s.calls.whoami
  await whoami(client)
  assert.equal(authFetch.handshakes, 2, 'renewed before sending')
  assert.equal(s.calls.whoami, before + 1)
  assert.equal(wire.answers.filter((a) => a.status === 401).length, 0, 'the server never refused')
})

test('renewal ahead of expiry is judged in the server clock: a client clock behind the server still renews in time', async () => {
  const serverClock = new TestClock()
  // 20 s behind (inside the handshake tolerance): judged in its own clock it would not renew yet.
  const clientClock = new TestClock(serverClock.ms - 20_000)
  const { s, wire, authFetch } = await setup({ serverClock, clientClock, sessionTtl: 10 })
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  serverClock.advance(6)
  clientClock.advance(6)
  await whoami(client)
  assert.equal(authFetch.handshakes, 2, 'renewed before sending')
  assert.equal(wire.answers.filter((a) => a.status === 401).length, 0, 'the server never refused')
  assert.ok(s.calls.whoami >= 2)
})

test('a server restart with a new ticket key: the first call fails with session_invalid (not re-sent), the next call handshakes and succeeds', async () => {
  const { p, s, wire, authFetch } = await setup()
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  // Same server key, a new (random) ticket key, no memory of the MCP session; reached at the same
  // address (the man in the middle routes there; its audience is the old address, as at a restart).
  const restarted = await startServer(p, undefined, undefined, { ticketKey: ticketKeyFrom(randomBytes(32)), audience: s.origin })
  wire.origin = new URL(restarted.url).origin
  const sentBefore = wire.toolCallsSent
  await assert.rejects(whoami(client), /session_invalid/)
  assert.equal(wire.toolCallsSent, sentBefore + 1, 'not sent again')
  assert.equal(restarted.calls.whoami, 0, 'nothing ran at the restarted server')
  const refused = wire.answers.at(-1)!
  assert.equal(refused.code, 'session_invalid')
  assert.equal(refused.refusal, null, 'a token the server cannot open gets no authenticated refusal')
  assert.equal(authFetch.current, undefined, 'the session is dropped')
  assert.equal(authFetch.handshakes, 1)
  // The next call: a new handshake with the restarted server (a new MCP session: the old one died with the process).
  const again = await connectClient(s.url, authFetch)
  cleanups.push(() => again.close())
  assert.equal((await whoami(again)).clientId, p.client.fingerprint)
  assert.equal(authFetch.handshakes, 2)
  assert.equal(restarted.calls.whoami, 1)
})

test('verifiedRefusal: the vectors, every one-character change refused, bound to the proof MAC', () => {
  const V = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as { session: { session_key_hex: string }; refusal: { refused_proof_header: string; cases: Array<{ code: string; header: string }>; negative: Array<{ name: string; header: string }> } }
  const key = Buffer.from(V.session.session_key_hex, 'hex')
  const R = V.refusal
  for (const c of R.cases) assert.equal(verifiedRefusal(key, R.refused_proof_header, c.header), c.code)
  const expired = R.cases[0]!.header
  assert.equal(verifiedRefusal(key, R.refused_proof_header, ` ${expired} `), 'session_expired', 'surrounding space is trimmed')
  for (const n of R.negative) assert.equal(verifiedRefusal(key, R.refused_proof_header, n.header), undefined, n.name)
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_'
  let tried = 0
  for (let i = 0; i < expired.length; i++) {
    const c = expired[i]!
    if (c === ',' || c === ' ' || c === '=') continue
    const other = alphabet[(alphabet.indexOf(c) + 1) % alphabet.length] ?? 'x'
    const changed = expired.slice(0, i) + other + expired.slice(i + 1)
    assert.equal(verifiedRefusal(key, R.refused_proof_header, changed), undefined, changed)
    tried++
  }
  assert.ok(tried >= 58)
  const otherMac = R.refused_proof_header.replace(/m=[A-Za-z0-9_-]{43}$/, `m=${Buffer.alloc(32, 7).toString('base64url')}`)
  assert.equal(verifiedRefusal(key, otherMac, expired), undefined, 'another proof: refused')
  assert.equal(verifiedRefusal(key, R.refused_proof_header, null), undefined)
  assert.equal(verifiedRefusal(key, R.refused_proof_header, 'c=' + 'a'.repeat(200)), undefined)
  assert.equal(verifiedRefusal(Buffer.alloc(32), R.refused_proof_header, expired), undefined, 'another session key: refused')
})
