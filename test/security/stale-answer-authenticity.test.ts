/**
 * Stale-answer authenticity (issue 9, mcp-pki/2 attack): a `401 proof_stale` makes createAuthFetch
 * send the request again with a proof naming the new epoch. Before the fix the answer was
 * unauthenticated, so a man in the middle (plain HTTP) could let the server run a request, answer
 * the client with a forged proof_stale, and have the request run twice. Now the server MACs the
 * answer under the session key over the refused proof's MAC and the new epoch (docs/PROTOCOL.md §6)
 * and the client re-sends only when that MAC verifies; anything else is handed back unchanged.
 * Real SDK client and server over 127.0.0.1; the man in the middle is the fetch under createAuthFetch.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { createAuthFetch, type AuthFetch, type FetchFunction } from '../../src/mcp/client.js'
import { EPOCH_HEADER } from '../../src/protocol/constants.js'
import { computeStaleAnswerMac, verifiedStaleEpoch } from '../../src/session/stale-answer.js'
import { VECTORS_PATH } from '../vectors/generate.js'
import { makeParties, TestNonceStore, type Parties } from '../helpers/fixtures.js'
import { connectClient, startProtectedServer, whoami, type TestMcpServer } from '../mcp/fixtures/harness.js'

const cleanups: Array<() => Promise<unknown> | unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {})
})

interface Wire {
  /** Set to forge the answer to the next tools/call after the server ran it (returns the forged header). */
  forge: ((sent: Headers) => string) | undefined
  /** Every answer from the server to an MCP request: status and MCP-PKI-Epoch header. */
  answers: Array<{ status: number; epoch: string | null; proof: string | null }>
  /** Requests that reached the server carrying tools/call. */
  toolCallsSent: number
  /** The last tools/call request as sent (to replay it later). */
  lastCall?: { input: Parameters<FetchFunction>[0]; init: Parameters<FetchFunction>[1] }
}

/** A man in the middle on the MCP requests: forwards to the server, optionally forges the answer. */
function manInTheMiddle(): { wire: Wire; fetch: FetchFunction } {
  const wire: Wire = { forge: undefined, answers: [], toolCallsSent: 0 }
  const fetch: FetchFunction = async (input, init) => {
    const body = typeof init?.body === 'string' ? init.body : init?.body instanceof Uint8Array ? Buffer.from(init.body).toString() : ''
    const headers = new Headers(init?.headers)
    const isCall = body.includes('"tools/call"')
    if (isCall) {
      wire.toolCallsSent++
      wire.lastCall = { input, init }
    }
    const res = await globalThis.fetch(input, init)
    wire.answers.push({ status: res.status, epoch: res.headers.get(EPOCH_HEADER), proof: headers.get('mcp-pki-proof') })
    if (isCall && wire.forge !== undefined && res.status === 200) {
      const forged = wire.forge(headers)
      wire.forge = undefined
      await res.body?.cancel()
      const text = JSON.stringify({ error: 'proof_stale', error_description: "the server's replay memory restarted" })
      return new Response(text, { status: 401, headers: { 'content-type': 'application/json', [EPOCH_HEADER]: forged, 'www-authenticate': 'Bearer error="invalid_token"' } })
    }
    return res
  }
  return { wire, fetch }
}

async function setup(): Promise<{ p: Parties; s: TestMcpServer; store: TestNonceStore; wire: Wire; authFetch: AuthFetch }> {
  const p = makeParties()
  const store = new TestNonceStore(10_000)
  const s = await startProtectedServer({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: store })
  cleanups.push(() => s.close())
  const { wire, fetch } = manInTheMiddle()
  const authFetch = createAuthFetch({ url: s.url, keyPair: p.client, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), retryAttempts: 0, fetch, handshakeFetch: globalThis.fetch })
  return { p, s, store, wire, authFetch }
}

const b64 = (n: number): string => randomBytes(n).toString('base64url')

test('a forged proof_stale after the server ran the request is handed back unchanged: the tool ran once, nothing re-sent', async () => {
  const { p, s, wire, authFetch } = await setup()
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  const forgeries: Array<[string, (sent: Headers) => string]> = [
    ['a bare epoch (the old MCP-PKI-Epoch form)', () => b64(8)],
    ['e= and a random MAC', () => `e=${b64(8)}, m=${b64(32)}`],
    ['e= and a MAC under a guessed (zero) key over the real refused proof', (sent) => {
      const epoch = randomBytes(8)
      const proofMac = Buffer.from(/m=([A-Za-z0-9_-]{43})/.exec(sent.get('mcp-pki-proof')!)![1]!, 'base64url')
      return `e=${epoch.toString('base64url')}, m=${computeStaleAnswerMac(Buffer.alloc(32), proofMac, epoch).toString('base64url')}`
    }],
    ['the current epoch again, no MAC', () => authFetch.current!.replayEpoch],
    ['garbage', () => 'e=***, m=***'],
  ]
  for (const [name, forge] of forgeries) {
    const before = s.calls.whoami
    const sentBefore = wire.toolCallsSent
    wire.forge = forge
    await assert.rejects(whoami(client), (err: unknown) => err instanceof Error, name)
    assert.equal(s.calls.whoami, before + 1, `${name}: the tool ran exactly once`)
    assert.equal(wire.toolCallsSent, sentBefore + 1, `${name}: the client did not send the request again`)
    assert.equal(authFetch.handshakes, 1, `${name}: and made no new handshake to send it again`)
  }
  // Positive control: without the man in the middle the next call goes through on the same session.
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)
})

test('a genuine proof_stale (the replay memory restarted) is authenticated: the client re-sends once with the new epoch and the tool runs once', async () => {
  const { p, s, store, wire, authFetch } = await setup()
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  const before = s.calls.whoami
  const sent = wire.toolCallsSent
  const oldEpoch = authFetch.current!.replayEpoch
  store.epochText = b64(8) // the server's replay memory began again
  store.map.clear()
  assert.equal((await whoami(client)).clientId, p.client.fingerprint)
  assert.equal(s.calls.whoami, before + 1, 'ran once')
  assert.equal(wire.toolCallsSent, sent + 2, 'refused once (stale), then accepted')
  assert.equal(authFetch.handshakes, 1, 'no new handshake')
  assert.equal(authFetch.current!.replayEpoch, store.epochText)
  assert.notEqual(authFetch.current!.replayEpoch, oldEpoch)
  const stale = wire.answers.find((a) => a.status === 401)!
  assert.match(stale.epoch ?? '', /^e=[A-Za-z0-9_-]{11}, m=[A-Za-z0-9_-]{43}$/)
  assert.equal(verifiedStaleEpoch(authFetch.current!.sessionKey, stale.proof!, stale.epoch), store.epochText)
})

test('concurrent requests after a restart: each gets its own authenticated stale answer and is re-sent once; every tool call runs once', async () => {
  const { p, s, store, wire, authFetch } = await setup()
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  const before = s.calls.whoami
  const sent = wire.toolCallsSent
  store.epochText = b64(8)
  const results = await Promise.all([whoami(client), whoami(client), whoami(client)])
  for (const r of results) assert.equal(r.clientId, p.client.fingerprint)
  assert.equal(s.calls.whoami, before + 3, 'three calls, three runs')
  assert.ok(wire.toolCallsSent <= sent + 6, 'at most one re-send per call')
  assert.equal(authFetch.handshakes, 1, 'no new handshake')
})

test('a genuine stale answer replayed onto another request is refused (it is bound to the refused proof)', async () => {
  const { s, store, wire, authFetch } = await setup()
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  store.epochText = b64(8)
  await whoami(client) // one genuine stale answer, captured on the wire
  const genuine = wire.answers.find((a) => a.status === 401)!.epoch!
  // The man in the middle presents it for a later request (another epoch again, so it would be "new").
  const before = s.calls.whoami
  const sent = wire.toolCallsSent
  wire.forge = () => genuine.replace(/^e=[A-Za-z0-9_-]{11}/, `e=${store.epochText}`)
  await assert.rejects(whoami(client))
  wire.forge = () => genuine
  await assert.rejects(whoami(client))
  assert.equal(s.calls.whoami, before + 2, 'each request ran once')
  assert.equal(wire.toolCallsSent, sent + 2, 'neither was sent again')
})

test('a request that may have run before the replay memory restarted is never sent again: its stale answer offers no epoch to follow', async () => {
  const { s, store, wire, authFetch } = await setup()
  const client = await connectClient(s.url, authFetch)
  cleanups.push(() => client.close())
  await whoami(client)
  const ran = s.calls.whoami
  const captured = wire.lastCall!
  // The server ran it; then its replay memory began again (a restart); the man in the middle
  // replays the held request to get a genuine answer he could hand the client.
  store.epochText = b64(8)
  store.map.clear()
  store.epochStartedAt = Date.now()
  const replayed = await globalThis.fetch(captured.input, captured.init)
  assert.equal(replayed.status, 401)
  assert.match(await replayed.text(), /proof_stale/)
  assert.equal(replayed.headers.get(EPOCH_HEADER), null, 'no MCP-PKI-Epoch answer: nothing a client would follow')
  assert.equal(s.calls.whoami, ran, 'and it did not run again')
  // A request sent after the memory began gets an authenticated stale answer and runs once.
  await new Promise((r) => setTimeout(r, 20))
  await whoami(client)
  assert.equal(s.calls.whoami, ran + 1)
  assert.equal(authFetch.current!.replayEpoch, store.epochText)
})

test('verifiedStaleEpoch: the vectors, and every one-character change of the genuine answer, refused', () => {
  const V = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as { session: { session_key_hex: string }; stale_answer: { refused_proof_header: string; header: string; client_accepts_epoch_b64u: string; negative: Array<{ name: string; header: string }> } }
  const key = Buffer.from(V.session.session_key_hex, 'hex')
  const S = V.stale_answer
  assert.equal(verifiedStaleEpoch(key, S.refused_proof_header, S.header), S.client_accepts_epoch_b64u)
  assert.equal(verifiedStaleEpoch(key, S.refused_proof_header, ` ${S.header} `), S.client_accepts_epoch_b64u, 'surrounding space is trimmed')
  for (const n of S.negative) assert.equal(verifiedStaleEpoch(key, S.refused_proof_header, n.header), undefined, n.name)
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  let tried = 0
  for (let i = 0; i < S.header.length; i++) {
    const c = S.header[i]!
    const other = alphabet[(alphabet.indexOf(c) + 1) % alphabet.length] ?? 'x'
    const changed = S.header.slice(0, i) + other + S.header.slice(i + 1)
    assert.equal(verifiedStaleEpoch(key, S.refused_proof_header, changed), undefined, changed)
    tried++
  }
  assert.equal(tried, 60)
  // Another proof (another request) with the same answer: refused.
  const otherProof = S.refused_proof_header.replace(/s=1,/, 's=2,')
  assert.equal(verifiedStaleEpoch(key, otherProof, S.header), S.client_accepts_epoch_b64u, 's is not what the answer binds; the proof MAC is')
  const otherMac = S.refused_proof_header.replace(/m=[A-Za-z0-9_-]{43}$/, `m=${Buffer.alloc(32, 7).toString('base64url')}`)
  assert.equal(verifiedStaleEpoch(key, otherMac, S.header), undefined)
  assert.equal(verifiedStaleEpoch(key, S.refused_proof_header, null), undefined)
  // An answer naming the epoch the proof already named is not stale, even with a valid MAC.
  const sentEpoch = /e=([A-Za-z0-9_-]{11})/.exec(S.refused_proof_header)![1]!
  const sameEpoch = `e=${sentEpoch}, m=${computeStaleAnswerMac(key, Buffer.from(/m=([A-Za-z0-9_-]{43})$/.exec(S.refused_proof_header)![1]!, 'base64url'), Buffer.from(sentEpoch, 'base64url')).toString('base64url')}`
  assert.equal(verifiedStaleEpoch(key, S.refused_proof_header, sameEpoch), undefined)
  assert.equal(verifiedStaleEpoch(key, S.refused_proof_header, 'e=' + 'A'.repeat(200)), undefined)
})
