/**
 * Header spellings: the Authorization token and the MCP-PKI-Proof header are matched exactly.
 * Another spelling of a token (case, padding, spacing, non-canonical base64url) is not the token;
 * another spelling of a proof is either refused (proof_invalid) or recognised as the same proof
 * (replay_detected), never a fresh one.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createRequestProof } from '../../src/session/session-token.js'
import { MCP_BODY, send } from './helpers/loopback-http.js'
import { listenerSession, mcpListener } from './helpers/mcp-listener.js'
import { expectRefused, sessionSetup } from './helpers/mcp-session.js'

// From the red-team, MCP endpoints (held).
test('a used proof re-sent in another spelling is never fresh: spacing variants are replay_detected; leading zeros in t and a non-canonical epoch are proof_invalid', async () => {
  const s = await mcpListener('handler')
  const session = await listenerSession(s)
  const headers = (proof: string): Record<string, string> => ({ authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof })
  const proof = createRequestProof({ session: session, method: 'POST', target: '/mcp', body: MCP_BODY })
  assert.equal((await send({ port: s.port }, { body: MCP_BODY, headers: headers(proof) })).status, 200)
  const e = /e=([A-Za-z0-9_-]{11})/.exec(proof)![1]!
  const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  // Same 8 bytes, other text: the last character carries 2 unused bits.
  const lastIdx = B64U.indexOf(e[10]!)
  const sameBytes = e.slice(0, 10) + B64U[lastIdx ^ 1]!
  const spellings = [proof.replace(', s=', ',s=').replace(', e=', ',e=').replace(', m=', ',m='), `  ${proof}  `]
  for (const v of spellings) {
    const r = await send({ port: s.port }, { body: MCP_BODY, headers: headers(v) })
    assert.equal(r.status, 401, v)
    assert.match(r.text, /replay_detected/, v)
  }
  for (const v of [proof.replace('t=', 't=0'), proof.replace('t=', 't=000')]) {
    const r = await send({ port: s.port }, { body: MCP_BODY, headers: headers(v) })
    assert.equal(r.status, 401, v)
    assert.match(r.text, /proof_invalid/, v)
  }
  const r = await send({ port: s.port }, { body: MCP_BODY, headers: headers(proof.replace(`e=${e}`, `e=${sameBytes}`)) })
  assert.equal(r.status, 401)
  assert.match(r.text, /proof_invalid/)
  assert.equal(s.reached.length, 1)
})

// From the red-team round 2 (held).
test('proof header parsing: duplicates, extra fields, other spellings, huge values are proof_invalid', async () => {
  const s = await sessionSetup()
  const good = s.proof()
  const m = /^t=(\d+), s=(\d+), e=([\w-]{11}), m=([\w-]{43})$/.exec(good)!
  const [t, q, e, mac] = [m[1]!, m[2]!, m[3]!, m[4]!]
  const bad = [
    `${good}, x=1`,
    `${good},`,
    `x=1, ${good}`,
    `T=${t}, s=${q}, e=${e}, m=${mac}`,
    `t=${t}, e=${e}, s=${q}, m=${mac}`,
    `t=${t}, s=${q}, m=${mac}, e=${e}`,
    `t=${t},  s=${q}, e=${e}, m=${mac}`,
    `t=${t}; s=${q}; e=${e}; m=${mac}`,
    `t=${t}, s=0${q}, e=${e}, m=${mac}`,
    `t=${t}, s=0, e=${e}, m=${mac}`,
    `t=${t}, s=-${q}, e=${e}, m=${mac}`,
    `t=${t}, s=${'9'.repeat(17)}, e=${e}, m=${mac}`,
    `t=${t}, s=${q}, e=${e}=, m=${mac}`,
    `t=${t}, s=${q}, e=${e}, m=${mac}=`,
    `t=+${t}, s=${q}, e=${e}, m=${mac}`,
    `t=${t}.0, s=${q}, e=${e}, m=${mac}`,
    `t=${t}, s=${q}, e=${e}, m=${mac.slice(0, 42)}${mac[42] === 'A' ? 'E' : 'A'}`,
    `t=${t}, s=${q}, e=${e.replace(/[-_]/g, (c) => (c === '-' ? '+' : '/'))}, m=${mac.replace(/[-_]/g, (c) => (c === '-' ? '+' : '/'))}`,
    `t=${'9'.repeat(16)}, s=${q}, e=${e}, m=${mac}`,
    `t=${'1'.repeat(17)}, s=${q}, e=${e}, m=${mac}`,
    `${good}${' '.repeat(200)}x`,
    'x'.repeat(8000),
  ].filter((p) => p !== good) // the standard-alphabet spelling equals the proof when it has no - or _
  for (const p of bad) {
    const r = await send(s.to, { body: MCP_BODY, headers: s.headers(p) })
    await expectRefused(s, r, 401, 'proof_invalid', JSON.stringify(p.slice(0, 120)))
  }
  // Two proof headers (the good one twice, or a good and a bad one): node joins them, never picks one.
  for (const twice of [[good, good], [good, `t=${t}, s=${q}, e=${e}, m=${'A'.repeat(43)}`], [`t=${t}, s=${q}, e=${e}, m=${'A'.repeat(43)}`, good]]) {
    const r = await send(s.to, { body: MCP_BODY, headers: { authorization: `Bearer ${s.session.token}`, 'mcp-pki-proof': twice } })
    await expectRefused(s, r, 401, 'proof_invalid', 'two proof headers')
  }
  assert.deepEqual(s.seen, [])
  assert.equal((await send(s.to, { body: MCP_BODY, headers: s.headers(good) })).status, 200, 'the good proof was never consumed')
})

// From the red-team round 2 (held).
test('a cached token is matched exactly: other spellings of it (case, padding, spacing, non-canonical base64url) are session_invalid', async () => {
  const s = await sessionSetup()
  // Cache the real token.
  assert.equal((await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof()) })).status, 200)
  const tok = s.session.token
  const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  const unused = tok.length % 4 === 2 ? 4 : tok.length % 4 === 3 ? 2 : 0
  assert.ok(unused > 0, 'the token length leaves unused bits in its last character')
  const sameBytes = tok.slice(0, -1) + B64U[B64U.indexOf(tok[tok.length - 1]!) ^ 1]!
  const authorizations = [
    `bearer ${tok}`,
    `BEARER ${tok}`,
    `Bearer  ${tok}`,
    `Bearer\t${tok}`,
    `Bearer ${tok}=`,
    `Bearer ${tok}==`,
    `Bearer ${sameBytes}`,
    `Bearer ${tok.replace(/-/g, '+').replace(/_/g, '/')}`,
    `Bearer ${tok},`,
    `Bearer ${tok} x`,
    `Bearer ${tok}${tok}`,
    `Bearer ${tok.slice(0, -1)}`,
    `Basic ${tok}`,
    tok,
  ].filter((a) => a !== `Bearer ${tok}`) // the standard-alphabet spelling equals the token when it has no - or _
  for (const authorization of authorizations) {
    const r = await send(s.to, { body: MCP_BODY, headers: { authorization, 'mcp-pki-proof': s.proof() } })
    await expectRefused(s, r, 401, 'session_invalid', authorization.slice(0, 20))
  }
  // A duplicate Authorization header: node keeps the first; a bogus first one is refused.
  const dup = await send(s.to, { body: MCP_BODY, headers: { authorization: [`Bearer ${'A'.repeat(174)}`, `Bearer ${tok}`], 'mcp-pki-proof': s.proof() } })
  await expectRefused(s, dup, 401, 'session_invalid', 'two Authorization headers')
  assert.equal(s.seen.length, 1)
})
