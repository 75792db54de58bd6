/**
 * The AuthInfo of an open session is kept per session while its allowlist entry is unchanged
 * (docs/benchmarks.md, session 10). An edit of the allowlist file must still reach the NEXT request
 * of a session already open: changed metadata scopes and role show at once; a removal refuses the
 * next request, and listing the key again does not bring the old session back.
 */
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { test } from 'node:test'
import { call, endpoint, handshake, statusOf } from './helpers/authinfo-endpoint.js'

test('metadata scopes and role changed in the allowlist file reach the next request of an open session', async () => {
  const s = await endpoint({ role: 'reader', scopes: ['tools:read'] })
  const session = await handshake(s)
  assert.deepEqual((await call(s, session)).scopes, ['tools:read', 'role:reader'])
  assert.deepEqual((await call(s, session)).scopes, ['tools:read', 'role:reader'])
  const text = await readFile(s.sb.serverAllowlistPath, 'utf8')
  await writeFile(s.sb.serverAllowlistPath, text.replace('["tools:read"]', '[]'))
  await s.configured.reloadAllowlist()
  const narrowed = await call(s, session)
  assert.deepEqual(narrowed.scopes, ['role:reader'], 'a scope taken out of the file is gone from the next request')
  const text2 = await readFile(s.sb.serverAllowlistPath, 'utf8')
  await writeFile(s.sb.serverAllowlistPath, text2.replace('"role":"reader"', '"role":"guest"'))
  await s.configured.reloadAllowlist()
  const demoted = await call(s, session)
  assert.equal(demoted.role, 'guest')
  assert.deepEqual(demoted.scopes, ['role:guest'])
})

test('a key removed from the allowlist file is refused on the next request, and re-adding it does not revive the session', async () => {
  const s = await endpoint({ role: 'reader', scopes: ['tools:read'] })
  const session = await handshake(s)
  await call(s, session)
  await call(s, session)
  const original = await readFile(s.sb.serverAllowlistPath, 'utf8')
  const parsed = JSON.parse(original) as { keys: Record<string, unknown> | unknown[] }
  const emptied = { ...parsed, keys: Array.isArray(parsed.keys) ? [] : {} }
  await writeFile(s.sb.serverAllowlistPath, JSON.stringify(emptied))
  await s.configured.reloadAllowlist()
  assert.equal(await statusOf(s, session), 401, 'refused right after removal')
  // Listed again, now with more scopes: the old session stays over, its cached AuthInfo unused.
  await writeFile(s.sb.serverAllowlistPath, original.replace('["tools:read"]', '["tools:read","tools:write"]').replace('"role":"reader"', '"role":"admin"'))
  await s.configured.reloadAllowlist()
  assert.equal(await statusOf(s, session), 401, 'the removed session stays refused after the key is listed again')
  const fresh = await handshake(s)
  const seen = await call(s, fresh)
  assert.deepEqual(seen.scopes, ['tools:read', 'tools:write', 'role:admin'], 'a new session gets the new entry')
})
