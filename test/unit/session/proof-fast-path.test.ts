/**
 * The request-proof hot path (cached HMAC pads, proof MAC written and compared without Buffers,
 * Authorization regex skipped for cached tokens) against a straightforward reference written here
 * from docs/PROTOCOL.md with createHmac: same MACs and headers byte for byte, and the verifier
 * refuses exactly what the reference refuses, with the same error codes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { AuthError } from '../../../src/errors.js'
import { b64u, fromB64u } from '../../../src/internal/bytes.js'
import { InMemoryNonceStore } from '../../../src/nonce/memory-nonce-store.js'
import type { NonceResult, NonceStore } from '../../../src/nonce/nonce-store.js'
import { bodyDigest, computeProofMac, createRequestProof, encodeSessionTicket, matchRequestProof, parseRequestProof } from '../../../src/session/session-token.js'
import { createSessionVerifier, type RequestToVerify, type RevocationCheck } from '../../../src/session/session-verifier.js'
import { deriveTicketKey } from '../../../src/session/ticket.js'
import { TestAllowlist, TestClock } from '../../helpers/fixtures.js'
import { VECTORS_PATH } from '../../vectors/generate.js'

// ---------- reference (docs/PROTOCOL.md, request proofs) ----------

function lp(b: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + b.byteLength)
  out.writeUInt32BE(b.byteLength, 0)
  out.set(b, 4)
  return out
}
const u8 = (s: string): Buffer => Buffer.from(s, 'utf8')
const sha = (d: Uint8Array | string): Buffer => createHash('sha256').update(d).digest()

interface RefProofInput {
  tokenHash: Uint8Array
  epoch: Uint8Array
  method: string
  target: string
  sid: string
  digest: Uint8Array
  ts: number
  seq: number
}

function refMac(key: Uint8Array, p: RefProofInput): Buffer {
  const input = Buffer.concat([
    lp(u8('mcp-pki/2 request-proof')),
    lp(p.tokenHash),
    lp(p.epoch),
    lp(u8(p.method.toUpperCase())),
    lp(u8(p.target)),
    lp(u8(p.sid)),
    lp(p.digest),
    lp(u8(String(p.ts))),
    lp(u8(String(p.seq))),
  ])
  return createHmac('sha256', key).update(input).digest()
}

function canonical(text: string): boolean {
  return Buffer.from(text, 'base64url').toString('base64url') === text
}

function refParse(header: unknown): { ts: number; seq: number; epochText: string; epoch: Buffer; mac: Buffer } | undefined {
  if (typeof header !== 'string' || header.length > 160) return undefined
  const m = /^t=(0|[1-9]\d{0,15}), ?s=([1-9]\d{0,15}), ?e=([A-Za-z0-9_-]{11}), ?m=([A-Za-z0-9_-]{43})$/.exec(header.trim())
  if (m === null || !canonical(m[3]!) || !canonical(m[4]!) || Number(m[2]) > Number.MAX_SAFE_INTEGER || Number(m[1]) > Number.MAX_SAFE_INTEGER) return undefined
  return { ts: Number(m[1]), seq: Number(m[2]), epochText: m[3]!, epoch: Buffer.from(m[3]!, 'base64url'), mac: Buffer.from(m[4]!, 'base64url') }
}

// ---------- MAC and header ----------

test('computeProofMac equals the reference for random tokens, epochs, methods, targets (up to 5000 chars, non-ASCII), session ids, digests, timestamps and sequences', () => {
  const methods = ['POST', 'post', 'GeT', 'DELETE', 'ß', 'patch-ü']
  for (let i = 0; i < 300; i++) {
    const key = randomBytes(i % 7 === 0 ? 64 + (i % 20) : 32)
    const method = methods[i % methods.length]!
    const target = i % 11 === 0 ? '/ü/' + 'x✓'.repeat(i * 8) : `/mcp?i=${i}&r=${randomBytes(i % 50).toString('hex')}`
    const sid = i % 3 === 0 ? '' : i % 5 === 0 ? 'sé✓' + 'x'.repeat(i) : randomBytes(8).toString('hex')
    const digest = randomBytes(i % 5 === 0 ? 0 : i % 3 === 0 ? 64 : 32)
    const p = { tokenHash: randomBytes(32), epoch: randomBytes(8), method, target, sid, digest, ts: Date.now() + i * 977, seq: 1 + i * 7919 }
    const got = computeProofMac(key, { tokenDigest: p.tokenHash, epoch: p.epoch, method, target, mcpSessionId: sid, bodyDigest: digest, timestamp: p.ts, sequence: p.seq })
    assert.equal(got.toString('hex'), refMac(key, p).toString('hex'), `case ${i}`)
  }
})

test('createRequestProof equals the reference header for every kind of body, and numbers its proofs 1, 2, 3 …', () => {
  const bodies: (string | Uint8Array | null | undefined)[] = [undefined, null, '', new Uint8Array(0), '{"jsonrpc":"2.0"}', 'é✓🔑', randomBytes(3000), 'x'.repeat(70_000)]
  const session = { sessionKey: randomBytes(32), token: b64u(randomBytes(120)), replayEpoch: b64u(randomBytes(8)), clockOffsetMs: -1234, lastSequence: 0 }
  for (const [i, body] of bodies.entries()) {
    const local = 1_768_469_401_000 + i
    const header = createRequestProof({ session, method: 'post', target: '/mcp?a=1', mcpSessionId: i % 2 === 0 ? 'sid-1' : undefined, body, clock: () => local })
    const digest = body === undefined || body === null ? sha('') : sha(body)
    assert.deepEqual(bodyDigest(body), digest)
    const ts = local - 1234
    const mac = refMac(session.sessionKey, { tokenHash: sha(Buffer.from(session.token, 'latin1')), epoch: Buffer.from(session.replayEpoch, 'base64url'), method: 'POST', target: '/mcp?a=1', sid: i % 2 === 0 ? 'sid-1' : '', digest, ts, seq: i + 1 })
    assert.equal(header, `t=${ts}, s=${i + 1}, e=${session.replayEpoch}, m=${b64u(mac)}`, `body ${i}`)
  }
})

test('the request-proof test vector (test/vectors, docs/PROTOCOL.md) through createRequestProof and computeProofMac', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const V = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as any
  const P = V.request_proof
  const key = Buffer.from(V.session.session_key_hex as string, 'hex')
  assert.equal(bodyDigest(P.body as string).toString('hex'), P.body_sha256_hex)
  const epoch = Buffer.from(V.messages.m4.replay_epoch as string, 'base64url')
  const mac = computeProofMac(key, { tokenDigest: Buffer.from(P.token_sha256_hex as string, 'hex'), epoch, method: P.method, target: P.target, mcpSessionId: P.mcp_session_id, bodyDigest: bodyDigest(P.body as string), timestamp: P.timestamp_ms, sequence: P.sequence })
  assert.equal(mac.toString('hex'), P.mac_hex)
  const session = { sessionKey: key, token: V.messages.m4.session_token as string, replayEpoch: V.messages.m4.replay_epoch as string, clockOffsetMs: V.session.client_clock_offset_ms as number, lastSequence: 0 }
  const header = createRequestProof({ session, method: P.method, target: P.target, mcpSessionId: P.mcp_session_id, body: P.body, clock: () => P.client_clock_ms as number })
  assert.equal(header, P.header)
})

// ---------- verifier ----------

interface Setup {
  clock: TestClock
  allowlist: TestAllowlist
  fingerprint: string
  token: string
  sessionKey: Buffer
  /** ProofSession fields (createRequestProof({ session: s })). */
  replayEpoch: string
  clockOffsetMs: number
  lastSequence: number
  sessionId: string
  store: ResettableStore
  revoked: { keys: Set<string>; sessions: Set<string> }
  ticketKey: ReturnType<typeof deriveTicketKey>
  expiresAt: number
}

/** A nonce store the test can empty between cases (a fresh in-memory store each time). */
class ResettableStore implements NonceStore {
  inner!: InMemoryNonceStore
  async = false
  readonly epochText = b64u(randomBytes(8))
  constructor(private readonly clock: () => number) {
    this.reset()
  }
  /** Empties the memory (same epoch: a test reset, not a restart); `max` live request windows. */
  reset(max = 1000): void {
    this.inner?.close()
    this.inner = new InMemoryNonceStore({ maxEntries: 1000, maxSessions: max, clock: this.clock, sweepIntervalMs: 0, epoch: this.epochText })
  }
  epoch(): string {
    return this.epochText
  }
  checkAndInsert(nonce: string, expiresAt: number, epoch?: string): NonceResult | Promise<NonceResult> {
    const r = this.inner.checkAndInsert(nonce, expiresAt, epoch)
    return this.async ? Promise.resolve(r) : r
  }
  checkSequence(sessionId: string, sequence: number, forgetAt: number, epoch: string): NonceResult | Promise<NonceResult> {
    const r = this.inner.checkSequence(sessionId, sequence, forgetAt, epoch)
    return this.async ? Promise.resolve(r) : r
  }
  size(): number {
    return this.inner.size()
  }
}

function setup(): Setup {
  const clock = new TestClock()
  const allowlist = new TestAllowlist()
  const fingerprint = allowlist.add(randomBytes(32).fill(9, 0, 1), { role: 'trusted_client' })
  const ticketKey = deriveTicketKey(randomBytes(32))
  const sessionKey = randomBytes(32)
  const sid = randomBytes(16)
  const expiresAt = clock.ms + 3600_000
  const token = b64u(encodeSessionTicket(ticketKey, { sessionId: sid, clientFingerprint: fingerprint, sessionKey, issuedAt: clock.ms, expiresAt, audience: 'https://a.example' }, randomBytes, clock.ms))
  const store = new ResettableStore(clock.now)
  return { expiresAt, clock, allowlist, fingerprint, token, sessionKey, replayEpoch: store.epoch(), clockOffsetMs: 0, lastSequence: 0, sessionId: b64u(sid), store, revoked: { keys: new Set(), sessions: new Set() }, ticketKey }
}

function verifierOf(s: Setup, binding: 'proof' | 'bearer' = 'proof') {
  const revocation: RevocationCheck = { isRevoked: (fp) => s.revoked.keys.has(fp), isSessionRevoked: (id) => s.revoked.sessions.has(id) }
  return createSessionVerifier({ ticketKeys: [s.ticketKey], allowlist: s.allowlist, nonceStore: s.store, clock: s.clock.now, revocation, binding })
}

/** The reference decision: 'ok' or the AuthError code, for a fresh nonce store. */
function reference(s: Setup, req: RequestToVerify, binding: 'proof' | 'bearer' = 'proof'): string {
  const now = s.clock.ms
  const a = req.authorization
  if (a === undefined || a === '') return 'session_invalid'
  const m = /^Bearer ([A-Za-z0-9_-]{16,1024})$/.exec(a)
  if (m === null || m[1] !== s.token) return 'session_invalid' // (this test only ever has one valid token)
  if (now >= s.expiresAt) return 'session_expired'
  if (s.allowlist.lookup(s.fingerprint, now).status !== 'ok' || s.revoked.keys.has(s.fingerprint) || s.revoked.sessions.has(s.sessionId)) return 'session_revoked'
  if (req.proof === undefined || req.proof === '') return binding === 'bearer' ? 'ok' : 'proof_missing'
  const p = refParse(req.proof)
  if (p === undefined) return 'proof_invalid'
  if (Math.abs(now - p.ts) > 30_000) return 'proof_invalid'
  const digest = req.bodyDigest ?? sha(req.body ?? '')
  const want = refMac(s.sessionKey, { tokenHash: sha(Buffer.from(s.token, 'latin1')), epoch: p.epoch, method: req.method, target: req.target, sid: req.mcpSessionId ?? '', digest, ts: p.ts, seq: p.seq })
  if (!timingSafeEqual(want, p.mac)) return 'proof_invalid'
  if (p.epochText !== s.store.epoch()) return 'proof_stale'
  return 'ok'
}

function outcome(fn: () => unknown): string {
  try {
    fn()
    return 'ok'
  } catch (err) {
    if (err instanceof AuthError) return err.code
    throw err
  }
}

const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

function mutations(s: Setup): RequestToVerify[] {
  const ts = s.clock.ms
  const proof = createRequestProof({ session: s, method: 'POST', target: '/mcp', body: BODY, clock: () => ts })
  const base: RequestToVerify = { authorization: `Bearer ${s.token}`, proof, method: 'POST', target: '/mcp', body: BODY }
  const out: RequestToVerify[] = [base, { ...base, method: 'post' }, { ...base, body: undefined, bodyDigest: sha(BODY) }]
  // every character of the header replaced, and a few structural changes
  const alphabet = ['A', 'g', '0', '-', '_', ' ', '=', ',', '.', 'é']
  for (let i = 0; i < proof.length; i++) {
    for (const c of alphabet) if (proof[i] !== c) out.push({ ...base, proof: proof.slice(0, i) + c + proof.slice(i + 1) })
  }
  const [, t, q, e, m] = /^t=(\d+), s=(\d+), e=([^,]+), m=(.+)$/.exec(proof)!
  const bump = (text: string, k: number): string => text.slice(0, -1) + 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(text.at(-1)!) + k]!
  const otherEpoch = b64u(randomBytes(8))
  const headers = [
    ` ${proof}`, `${proof} `, `\t${proof}\n`, `\u00a0${proof}`, `${proof}\u2028`, proof.replace(/, /g, ','), proof.replace(', ', ',  '),
    `t=0${t}, s=${q}, e=${e}, m=${m}`, `t=${Number(t) + 30_000}, s=${q}, e=${e}, m=${m}`, `t=${Number(t) - 30_001}, s=${q}, e=${e}, m=${m}`,
    `t=${t}, s=0${q}, e=${e}, m=${m}`, `t=${t}, s=0, e=${e}, m=${m}`, `t=${t}, s=${Number(q) + 1}, e=${e}, m=${m}`, `t=${t}, s=${'9'.repeat(16)}, e=${e}, m=${m}`,
    `t=${t}, s=${q}, e=${bump(e!, 1)}, m=${m}`, `t=${t}, s=${q}, e=${bump(e!, 4)}, m=${m}`, `t=${t}, s=${q}, e=${otherEpoch}, m=${m}`, `t=${t}, s=${q}, e=${e}, m=${bump(m!, 1)}`, `t=${t}, s=${q}, e=${e}, m=${bump(m!, 2)}`,
    `t=${t}, s=${q}, e=${e}=, m=${m}`, `t=${t}, s=${q}, e=${e}, m=${m}=`, `t=${t}, e=${e}, s=${q}, m=${m}`, `t=${t}, s=${q}, e=${e}, m=${m!.slice(0, -1)}`,
    `${proof}${' '.repeat(160 - proof.length)}`, `${proof}${' '.repeat(161 - proof.length)}`, 'x', '',
  ]
  for (const h of headers) out.push({ ...base, proof: h })
  // validly signed proofs around the edges of the ±30 s window, and with a leading zero in t
  for (const dt of [-120_000, -30_001, -30_000, -1, 0, 1, 29_999, 30_000, 30_001, 120_000]) {
    const at = ts + dt
    const p = createRequestProof({ session: s, method: 'POST', target: '/mcp', body: BODY, clock: () => at })
    out.push({ ...base, proof: p }, { ...base, proof: p.replace('t=', 't=0') })
  }
  // a validly signed proof naming another epoch (a restarted memory): proof_stale, after the MAC
  const stale = createRequestProof({ session: { ...s, replayEpoch: otherEpoch }, method: 'POST', target: '/mcp', body: BODY, clock: () => ts })
  out.push({ ...base, proof: stale }, { ...base, mcpSessionId: 'x' }, { ...base, mcpSessionId: '' })
  out.push({ ...base, proof: undefined }, { ...base, method: 'GET' }, { ...base, target: '/mcp?' }, { ...base, target: '/MCP' }, { ...base, body: BODY + ' ' }, { ...base, body: '' })
  out.push({ ...base, body: Buffer.from(BODY) }, { ...base, bodyDigest: sha('other') })
  // the Authorization header around a valid (and, after the first case, cached) token
  const tok = s.token
  for (const a of [undefined, '', `bearer ${tok}`, `Bearer  ${tok}`, `Bearer ${tok} `, `Bearer ${tok}\n`, ` Bearer ${tok}`, `Bearer ${tok}A`, `Bearer ${tok.slice(1)}`, `Bearer ${tok.slice(0, -1)}`, `Bearer\t${tok}`, `Bearer ${tok}`, 'Bearer ' + 'A'.repeat(1025)]) {
    out.push({ ...base, authorization: a })
  }
  return out
}

test('the verifier refuses exactly what the reference refuses, with the same codes (sync and async nonce store, cold and cached token)', async () => {
  for (const asyncStore of [false, true]) {
    for (const cold of [true, false]) {
      const s = setup()
      s.store.async = asyncStore
      const v = verifierOf(s)
      const cases = mutations(s)
      assert.ok(cases.length > 500)
      let accepted = 0
      for (const [i, req] of cases.entries()) {
        const v1 = cold ? verifierOf(s) : v
        if (!cold) v.verifyToken(s.token) // token cached: the fast Authorization path
        s.store.reset()
        const want = reference(s, req)
        let got: string
        try {
          await v1.verify(req)
          got = 'ok'
        } catch (err) {
          assert.ok(err instanceof AuthError, String(err))
          got = err.code
        }
        assert.equal(got, want, `case ${i} (async store ${asyncStore}, cold ${cold}): ${JSON.stringify({ ...req, authorization: req.authorization?.slice(0, 12) })}`)
        if (got === 'ok') {
          accepted++
          // single use: the same proof again is a replay
          await assert.rejects(v1.verify(req), (e: unknown) => e instanceof AuthError && e.code === 'replay_detected')
        }
      }
      assert.ok(accepted >= 5, `accepted ${accepted}`)
    }
  }
})

test('parseRequestProof and matchRequestProof accept exactly the headers of the reference parser', () => {
  const s = setup()
  for (const req of mutations(s)) {
    const h = req.proof as string
    const want = refParse(h)
    const parsed = parseRequestProof(h)
    assert.equal(matchRequestProof(h) !== undefined, want !== undefined, JSON.stringify(h))
    assert.equal(parsed !== undefined, want !== undefined, JSON.stringify(h))
    if (parsed !== undefined && want !== undefined) {
      assert.equal(parsed.timestamp, want.ts)
      assert.equal(parsed.sequence, want.seq)
      assert.equal(parsed.epochText, want.epochText)
      assert.deepEqual(parsed.mac, want.mac)
    }
  }
  for (const bad of [undefined, null, 42, {}] as unknown as string[]) assert.equal(matchRequestProof(bad), undefined)
})

test('cached tokens still go through expiry, allowlist, key and session revocation, and a full nonce store', () => {
  const s = setup()
  const v = verifierOf(s)
  const req = (): RequestToVerify => ({ authorization: `Bearer ${s.token}`, proof: createRequestProof({ session: s, method: 'POST', target: '/mcp', body: BODY, clock: s.clock.now }), method: 'POST', target: '/mcp', body: BODY })
  assert.equal(outcome(() => v.verifyNow(req())), 'ok')
  s.revoked.keys.add(s.fingerprint)
  assert.equal(outcome(() => v.verifyNow(req())), 'session_revoked')
  assert.equal(outcome(() => v.verifyToken(s.token)), 'session_revoked')
  s.revoked.keys.clear()
  s.revoked.sessions.add(s.sessionId)
  assert.equal(outcome(() => v.verifyNow(req())), 'session_revoked')
  s.revoked.sessions.clear()
  s.allowlist.remove(s.fingerprint)
  assert.equal(outcome(() => v.verifyNow(req())), 'session_revoked')
  s.allowlist.add(randomBytes(32)) // an unrelated entry
  assert.equal(outcome(() => v.verifyNow(req())), 'session_revoked')
  // full window table: fail closed for a new session, never evict a live window
  const s2 = setup()
  const v2 = verifierOf(s2)
  s2.store.reset(1)
  const other = setup()
  const otherToken = b64u(encodeSessionTicket(s2.ticketKey, { sessionId: randomBytes(16), clientFingerprint: s2.fingerprint, sessionKey: other.sessionKey, issuedAt: s2.clock.ms, expiresAt: s2.expiresAt, audience: 'https://a.example' }, randomBytes, s2.clock.ms))
  const otherSession = { ...other, token: otherToken, replayEpoch: s2.store.epoch() }
  assert.equal(outcome(() => v2.verifyNow(req2())), 'ok')
  assert.equal(outcome(() => v2.verifyNow(req2())), 'ok')
  const third = createRequestProof({ session: otherSession, method: 'POST', target: '/mcp', body: BODY, clock: s2.clock.now })
  assert.equal(outcome(() => v2.verifyNow({ authorization: `Bearer ${otherToken}`, proof: third, method: 'POST', target: '/mcp', body: BODY })), 'server_busy')
  assert.equal(outcome(() => v2.verifyNow(req2())), 'ok')
  function req2(): RequestToVerify {
    return { authorization: `Bearer ${s2.token}`, proof: createRequestProof({ session: s2, method: 'POST', target: '/mcp', body: BODY, clock: s2.clock.now }), method: 'POST', target: '/mcp', body: BODY }
  }
  // expiry: refused once the clock passes expires_at, also when cached, and after eviction
  s2.store.reset()
  s2.clock.advance(3599)
  assert.equal(outcome(() => v2.verifyNow(req2())), 'ok')
  s2.clock.advance(1)
  assert.equal(outcome(() => v2.verifyNow(req2())), 'session_expired')
  assert.equal(outcome(() => v2.verifyNow(req2())), 'session_expired')
  assert.equal(outcome(() => v2.verifyToken(s2.token)), 'session_expired')
})

test('bearer binding: no proof accepted, a present proof is still checked in full', () => {
  const s = setup()
  const v = verifierOf(s, 'bearer')
  const base = { authorization: `Bearer ${s.token}`, method: 'POST', target: '/mcp', body: BODY }
  assert.equal(outcome(() => v.verifyNow({ ...base, proof: undefined })), 'ok')
  assert.equal(outcome(() => v.verifyNow({ ...base, proof: 'garbage' })), 'proof_invalid')
  const proof = createRequestProof({ session: s, method: 'POST', target: '/mcp', body: BODY, clock: s.clock.now })
  assert.equal(outcome(() => v.verifyNow({ ...base, proof, target: '/other' })), 'proof_invalid')
  assert.equal(outcome(() => v.verifyNow({ ...base, proof })), 'ok')
  assert.equal(outcome(() => v.verifyNow({ ...base, proof })), 'replay_detected')
  assert.equal(reference(s, { ...base, proof: undefined }, 'bearer'), 'ok')
})

test('proofs made with another session key are refused (fromB64u sanity of the token used)', () => {
  const s = setup()
  assert.ok(fromB64u(s.token) !== undefined)
  const v = verifierOf(s)
  const proof = createRequestProof({ session: { ...s, sessionKey: randomBytes(32) }, method: 'POST', target: '/mcp', body: BODY, clock: s.clock.now })
  assert.equal(outcome(() => v.verifyNow({ authorization: `Bearer ${s.token}`, proof, method: 'POST', target: '/mcp', body: BODY })), 'proof_invalid')
})
