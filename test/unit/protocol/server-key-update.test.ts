/** Message 4's optional server_key_update (docs/PROTOCOL.md §15): strict parsing before any crypto. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { parseAuthComplete } from '../../../src/protocol/messages.js'
import { ROTATION_VECTORS_PATH } from '../../vectors/generate-rotation.js'

/* eslint-disable @typescript-eslint/no-explicit-any */
const V = JSON.parse(readFileSync(ROTATION_VECTORS_PATH, 'utf8')) as any
const m4 = V.announce.messages.m4

test('message 4 with an update parses; without it, the update is absent', () => {
  const parsed = parseAuthComplete(structuredClone(m4))
  assert.equal(parsed.serverKeyUpdate?.fromPublicKey.byteLength, 32)
  assert.deepEqual(parsed.wire, m4)
  const bare = { ...m4 }
  delete bare.server_key_update
  assert.equal(parseAuthComplete(bare).serverKeyUpdate, undefined)
})

test('a malformed update makes message 4 invalid_message, naming the field', () => {
  const u = m4.server_key_update
  const cases: [unknown, RegExp][] = [
    [null, /server_key_update must be a JSON object/],
    [[u], /server_key_update must be a JSON object/],
    [{ ...u, extra: 1 }, /server_key_update has an unknown field "extra"/],
    [{ ...u, to_signature: undefined }, /to_signature must be a base64url string/],
    [(({ to_signature: _t, ...rest }) => rest)(u), /to_signature is missing/],
    [{ ...u, to_public_key: u.from_public_key }, /names the same key twice/],
    [{ ...u, from_public_key: u.from_public_key.slice(0, 42) }, /from_public_key must decode to 32 bytes|unpadded base64url/],
    [{ ...u, from_signature: u.from_signature + 'A' }, /from_signature must (decode to 64 bytes|be unpadded base64url)/],
  ]
  for (const [update, message] of cases) {
    assert.throws(() => parseAuthComplete({ ...m4, server_key_update: update }), (err: any) => err.code === 'invalid_message' && message.test(err.message), String(message))
  }
})
