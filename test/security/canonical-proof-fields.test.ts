/**
 * Canonical proof fields (issue 9, mcp-pki/2 attack): the MCP-PKI-Proof header's `t=` and `s=` are
 * canonical decimals — no leading zero, no sign, at most 16 digits, at most 2^53 − 1 — and `e=`/`m=`
 * canonical base64url. The MAC covers the canonical decimal, so before the fix `t=0<ms>` verified
 * with the MAC of `t=<ms>`: two spellings of one proof. Every other spelling is now refused with
 * proof_invalid and a message naming the field and the rule.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { AuthError } from '../../src/errors.js'
import { createRequestProof, matchRequestProof, parseRequestProof, proofHeaderProblem } from '../../src/session/session-token.js'
import { makeHarness, type Run } from '../helpers/handshake-harness.js'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { createAuthFetch } from '../../src/mcp/client.js'
import { makeParties, TestNonceStore } from '../helpers/fixtures.js'
import { startProtectedServer } from '../mcp/fixtures/harness.js'

const E = 'AAAAAAAAAAA'
const M = 'A'.repeat(43)
const header = (t: string, s: string, e = E, m = M): string => `t=${t}, s=${s}, e=${e}, m=${m}`

function requestOf(run: Run, proof: string): { authorization: string; proof: string; method: string; target: string; body: string } {
  return { authorization: `Bearer ${run.session.token}`, proof, method: 'POST', target: '/mcp', body: '{}' }
}

test('t= and s= accept exactly the canonical decimals, up to 2^53 − 1', () => {
  const goodT = ['0', '1', '1768469400950', '9999999999999', '9007199254740991']
  const badT: Array<[string, RegExp]> = [
    ['01768469400950', /no leading zero/],
    ['00', /no leading zero/],
    ['+1768469400950', /no sign/],
    ['-1', /no sign/],
    [' 1', /t=/],
    ['1e3', /digits only/],
    ['1.0', /digits only/],
    ['9007199254740992', /2\^53 - 1/],
    ['9999999999999999', /2\^53 - 1/],
    ['12345678901234567', /at most 16 digits/],
    ['', /t=/],
    ['１２', /digits only/],
  ]
  for (const t of goodT) {
    assert.equal(parseRequestProof(header(t, '1'))?.timestamp, Number(t), t)
    assert.equal(String(parseRequestProof(header(t, '1'))!.timestamp), t, 'the text is the canonical decimal of the value')
  }
  for (const [t, why] of badT) {
    assert.equal(matchRequestProof(header(t, '1')), undefined, JSON.stringify(t))
    assert.match(proofHeaderProblem(header(t, '1')), why, JSON.stringify(t))
  }
  const goodS = ['1', '2', '1024', '9007199254740991']
  const badS = ['0', '01', '007', '+1', '-1', '9007199254740992', '12345678901234567', '1.5', '']
  for (const s of goodS) assert.equal(parseRequestProof(header('1', s))?.sequence, Number(s), s)
  for (const s of badS) {
    assert.equal(matchRequestProof(header('1', s)), undefined, JSON.stringify(s))
    assert.match(proofHeaderProblem(header('1', s)), /^s= must be the sequence number as a canonical decimal/, JSON.stringify(s))
  }
})

test('e= and m= must be canonical base64url; the field order and separators are fixed; the problem names the field', () => {
  assert.ok(matchRequestProof(header('1', '1', 'AAAAAAAAAAE', 'A'.repeat(42) + 'E')))
  assert.match(proofHeaderProblem(header('1', '1', 'AAAAAAAAAAB')), /^e= must be the replay epoch/, 'non-zero unused bits')
  assert.match(proofHeaderProblem(header('1', '1', 'AAAAAAAAAA')), /^e= must be/)
  assert.match(proofHeaderProblem(header('1', '1', E, 'A'.repeat(42) + 'B')), /^m= must be the MAC/)
  assert.match(proofHeaderProblem(header('1', '1', E, 'A'.repeat(43) + '=')), /^m= must be the MAC/)
  assert.match(proofHeaderProblem(`s=1, t=1, e=${E}, m=${M}`), /field 1 must be t=/)
  assert.match(proofHeaderProblem(`t=1, s=1, e=${E}`), /exactly "t=<ms>, s=<sequence>, e=<epoch>, m=<mac>"/)
  assert.match(proofHeaderProblem(`t=1,  s=1, e=${E}, m=${M}`), /field 2 must be s=/)
  assert.match(proofHeaderProblem('x'.repeat(161)), /161 characters long; at most 160/)
  for (const h of [header('1', '1'), `t=1,s=1,e=${E},m=${M}`, `  ${header('1', '1')}  `]) assert.ok(matchRequestProof(h), h)
})

test('a signed proof with a leading zero in t (or s), or a sign, is refused as proof_invalid with the precise reason; the canonical one is accepted', async () => {
  const h = makeHarness()
  const run = await h.run()
  const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: '{}', clock: h.serverClock.now })
  const variants: Array<[string, RegExp]> = [
    [proof.replace('t=', 't=0'), /t= must be the time in ms as a canonical decimal/],
    [proof.replace('t=', 't=00'), /t= must be/],
    [proof.replace('t=', 't=+'), /t= must be/],
    [proof.replace('s=', 's=0'), /s= must be the sequence number/],
    [proof.replace('s=', 's=+'), /s= must be/],
  ]
  for (const [v, why] of variants) {
    await assert.rejects(h.verifier.verify(requestOf(run, v)), (e: unknown) => e instanceof AuthError && e.code === 'proof_invalid' && e.message.startsWith('MCP-PKI-Proof header is malformed: ') && why.test(e.message), v)
  }
  // The canonical spelling still works, once.
  await h.verifier.verify(requestOf(run, proof))
  await assert.rejects(h.verifier.verify(requestOf(run, proof)), (e: unknown) => e instanceof AuthError && e.code === 'replay_detected')
})

test('over HTTP: a non-canonical proof is a 401 proof_invalid whose reason reaches the client in the body and, as ASCII, in WWW-Authenticate', async (t) => {
  const p = makeParties()
  const s = await startProtectedServer({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore() })
  t.after(() => s.close())
  const authFetch = createAuthFetch({ url: s.url, keyPair: p.client, serverTrust: createServerTrust({ allowlist: p.clientAllowlist }), retryAttempts: 0 })
  const session = await authFetch.session()
  const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}'
  for (const [mangle, why] of [[(x: string) => x.replace('t=', 't=0'), /t= must be/], [(x: string) => x.replace(/s=\d+/, 's=9007199254740992'), /s= must be/]] as const) {
    const proof = mangle(createRequestProof({ session, method: 'POST', target: '/mcp', body }))
    const res = await fetch(s.url, { method: 'POST', headers: { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body })
    assert.equal(res.status, 401)
    const json = (await res.json()) as { error: string; error_description: string }
    assert.equal(json.error, 'proof_invalid')
    assert.match(json.error_description, why)
    const challenge = res.headers.get('www-authenticate') ?? ''
    assert.match(challenge, /error_description="MCP-PKI-Proof header is malformed: /)
    assert.match(challenge, /^[\x20-\x7e]+$/)
  }
  assert.equal(s.calls.whoami, 0)
})
