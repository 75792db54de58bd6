import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { parseAuthChallenge, parseAuthComplete, parseAuthError, parseAuthRequest, parseAuthResponse, parseJsonMessage } from '../../../src/protocol/messages.js'
import { signingInput, transcript1 } from '../../../src/protocol/transcript.js'
import { CONTEXT } from '../../../src/protocol/constants.js'
import { VECTORS_PATH } from '../../vectors/generate.js'

/* eslint-disable @typescript-eslint/no-explicit-any */
const V = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as any

test('the vector messages parse, and the parsed wire copy equals the input', () => {
  assert.deepEqual(parseAuthRequest(V.messages.m1).wire, V.messages.m1)
  assert.deepEqual(parseAuthChallenge(V.messages.m2).wire, V.messages.m2)
  assert.deepEqual(parseAuthResponse(V.messages.m3).wire, V.messages.m3)
  assert.deepEqual(parseAuthComplete(V.messages.m4).wire, V.messages.m4)
  const r = parseAuthRequest(V.messages.m1)
  assert.equal(r.clientNonce.byteLength, 32)
  assert.equal(r.timestamp, Date.parse(V.messages.m1.timestamp))
})

test('parsers refuse a message of another type, even when every field is well formed', () => {
  assert.throws(() => parseAuthRequest({ ...V.messages.m1, type: 'auth_challenge' }), { code: 'invalid_message' })
  assert.throws(() => parseAuthChallenge(V.messages.m1), { code: 'invalid_message' })
  assert.throws(() => parseAuthComplete({ ...V.messages.m4, success: 'true' }), { code: 'invalid_message' })
  assert.throws(() => parseAuthComplete({ ...V.messages.m4, client_fingerprint: V.messages.m4.client_fingerprint.toUpperCase() }), { code: 'invalid_message' })
})

test('the snapshot is a copy: later changes to the input do not reach the parsed message', () => {
  const m1 = structuredClone(V.messages.m1)
  const parsed = parseAuthRequest(m1)
  m1.audience = 'changed'
  assert.equal(parsed.audience, V.messages.m1.audience)
  assert.equal(parsed.wire.audience, V.messages.m1.audience)
})

test('parseAuthError bounds what it copies from the peer', () => {
  const e = parseAuthError({ type: 'auth_error', version: 'x'.repeat(100), error: { code: 'c'.repeat(100), message: 'm'.repeat(1000) }, retry_after: 5 })
  assert.equal(e?.version.length, 32)
  assert.equal(e?.error.code.length, 64)
  assert.equal(e?.error.message.length, 500)
  assert.equal(e?.retry_after, 5)
  assert.equal(parseAuthError({ type: 'auth_error', error: 'nope' }), undefined)
  assert.equal(parseAuthError(V.messages.m2), undefined)
})

test('parseJsonMessage counts bytes, not characters', () => {
  assert.throws(() => parseJsonMessage(`"${'é'.repeat(10)}"`, 21), { code: 'payload_too_large' })
  assert.equal(parseJsonMessage(`"${'é'.repeat(10)}"`, 22), 'é'.repeat(10))
})

test('length prefixes keep field boundaries: moving a byte between fields changes the transcript', () => {
  const base = { clientPublicKey: Buffer.alloc(32, 1), clientNonce: Buffer.alloc(32, 2), clientEphemeral: Buffer.alloc(32, 3), timestamp: '2026-01-01T00:00:00.000Z', audience: 'ab' }
  const a = transcript1(base)
  assert.equal(a.length, 4 + 9 + 3 * (4 + 32) + 4 + 24 + 4 + 2)
  assert.equal(a.subarray(0, 13).toString('hex'), '000000096d63702d706b692f32')
  assert.notDeepEqual(signingInput(CONTEXT.clientResponse, a), signingInput(CONTEXT.serverChallenge, a))
  assert.equal(signingInput(CONTEXT.clientResponse, a).length, 4 + CONTEXT.clientResponse.length + 32)
})
