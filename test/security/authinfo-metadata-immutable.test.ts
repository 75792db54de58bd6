/**
 * createMcpAuth hands a handler an AuthInfo whose `extra.metadata` is the allowlist entry's own
 * metadata object. The AuthInfo and the metadata object are frozen, but only shallowly: nested
 * values (a `scopes` array, a nested object) are the allowlist entry's live objects. A handler
 * that changes them must not change the identity, role or scopes any later request sees: not a
 * later request of its own session, not another session of the same key.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { call, endpoint, handshake } from './helpers/authinfo-endpoint.js'

const METADATA = { role: 'reader', scopes: ['tools:read'], team: { name: 'blue' } }

test("a handler that changes the nested metadata it was handed does not change a later request's identity (same session)", async () => {
  const s = await endpoint(METADATA)
  const session = await handshake(s)
  const before = await call(s, session)
  assert.deepEqual(before, { scopes: ['tools:read', 'role:reader'], role: 'reader', metadataScopes: ['tools:read'], metadataTeam: { name: 'blue' } })
  await call(s, session, true)
  assert.deepEqual(await call(s, session), before, 'the next request of the same session sees the allowlist metadata, not what a handler wrote')
})

test('a handler that changes the nested metadata it was handed does not grant scopes to another session of the same key', async () => {
  const s = await endpoint(METADATA)
  const a = await handshake(s)
  await call(s, a, true)
  // A second session of the same client key, opened after the handler ran: its AuthInfo is made
  // from the allowlist entry, which must still say what the allowlist file says.
  const b = await handshake(s)
  const seen = await call(s, b)
  assert.deepEqual(seen.scopes, ['tools:read', 'role:reader'], 'no scope a handler pushed into the metadata reaches another session')
  assert.deepEqual(seen.metadataTeam, { name: 'blue' })
})
