import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Allowlist, parseExpiry, toFileRecord } from '../../../src/allowlist/allowlist.js'
import type { AllowlistEntry } from '../../../src/allowlist/types.js'
import { AuthError } from '../../../src/errors.js'
import { fingerprintOf, generateKeyPair, rawPublicKey } from '../../../src/keys/key-pair.js'

const FIXTURES = fileURLToPath(new URL('../../fixtures/allowlist/', import.meta.url))
const NOW = Date.UTC(2025, 5, 1, 12, 0, 0)

function isAuthError(code: string, pattern?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AuthError, `expected AuthError, got ${String(err)}`)
    assert.equal(err.code, code)
    if (pattern) assert.match(err.message, pattern)
    return true
  }
}

test('lookup: ok with a KeyObject that is imported once and reused', () => {
  const kp = generateKeyPair()
  const list = new Allowlist()
  list.add({ publicKeyRaw: kp.publicKeyRaw, metadata: { role: 'api_client' } })
  const a = list.lookup(kp.fingerprint, NOW)
  const b = list.lookup(kp.fingerprint, NOW, kp.publicKeyRaw)
  assert.equal(a.status, 'ok')
  assert.equal(b.status, 'ok')
  if (a.status !== 'ok' || b.status !== 'ok') return
  assert.equal(a.publicKey, b.publicKey, 'same KeyObject instance both times')
  assert.deepEqual(rawPublicKey(a.publicKey), kp.publicKeyRaw)
  assert.equal(a.entry.metadata.role, 'api_client')
  assert.ok(list.has(kp.fingerprint, NOW))
})

test('lookup: unknown fingerprint', () => {
  const list = new Allowlist()
  list.add({ publicKeyRaw: generateKeyPair().publicKeyRaw })
  assert.deepEqual(list.lookup('0'.repeat(64), NOW), { status: 'unknown' })
  assert.equal(list.has('0'.repeat(64), NOW), false)
})

test('expiry: a date-only metadata.expires lasts to the end of that day (UTC)', () => {
  const kp = generateKeyPair()
  const list = new Allowlist()
  list.add({ publicKeyRaw: kp.publicKeyRaw, metadata: { expires: '2024-12-31' } })
  const lastMs = Date.UTC(2024, 11, 31, 23, 59, 59, 999)
  const boundary = Date.UTC(2025, 0, 1)
  assert.equal(list.lookup(kp.fingerprint, lastMs).status, 'ok')
  assert.equal(list.has(kp.fingerprint, lastMs), true)
  const expired = list.lookup(kp.fingerprint, boundary)
  assert.equal(expired.status, 'expired')
  assert.equal(list.has(kp.fingerprint, boundary), false)
  assert.equal(list.lookup(kp.fingerprint, NOW).status, 'expired')
})

test('expiry: not_after date-time and the earlier of not_after / metadata.expires wins', () => {
  const kp = generateKeyPair()
  const fp = kp.fingerprint
  const text = JSON.stringify({
    version: 1,
    keys: {
      [fp]: {
        fingerprint: fp,
        public_key: kp.publicKeyRaw.toString('base64url'),
        added_at: '2025-01-01T00:00:00.000Z',
        metadata: { expires: '2030-01-01' },
        not_after: '2025-06-01T12:00:00+02:00',
      },
    },
  })
  const list = Allowlist.fromJSON(text, 'mem.json')
  assert.equal(list.get(fp)?.notAfter, Date.UTC(2025, 5, 1, 10))
  assert.equal(list.lookup(fp, Date.UTC(2025, 5, 1, 10) - 1).status, 'ok')
  assert.equal(list.lookup(fp, Date.UTC(2025, 5, 1, 10)).status, 'expired')
})

test('parseExpiry accepts dates and zoned date-times, rejects the rest', () => {
  assert.equal(parseExpiry('2024-02-29'), Date.UTC(2024, 2, 1))
  assert.equal(parseExpiry('2023-02-29'), undefined)
  assert.equal(parseExpiry('2024-12-31T10:00:00Z'), Date.UTC(2024, 11, 31, 10))
  assert.equal(parseExpiry('2024-12-31T10:00:00'), undefined, 'no zone: ambiguous')
  assert.equal(parseExpiry('next tuesday'), undefined)
})

test('an unparseable expiry is an error naming the entry, not a key that never expires', () => {
  const kp = generateKeyPair()
  const list = new Allowlist('x.json')
  assert.throws(() => list.add({ publicKeyRaw: kp.publicKeyRaw, metadata: { expires: 'soon' } }), isAuthError('allowlist_invalid', /metadata\.expires/))
  assert.equal(list.size, 0)
})

test('fingerprint-only entry is completed by the first lookup that presents the matching key', () => {
  const kp = generateKeyPair()
  const other = generateKeyPair()
  const list = new Allowlist()
  const completed: AllowlistEntry[] = []
  list.onComplete = (e) => completed.push(e)
  list.add({ fingerprint: kp.fingerprint.toUpperCase(), metadata: { role: 'backup_server' } })
  assert.equal(list.get(kp.fingerprint)?.publicKeyRaw, undefined)
  assert.equal(list.has(kp.fingerprint, NOW), true)
  // No key presented, or the wrong key: not usable.
  assert.equal(list.lookup(kp.fingerprint, NOW).status, 'unknown')
  assert.equal(list.lookup(kp.fingerprint, NOW, other.publicKeyRaw).status, 'unknown')
  assert.equal(completed.length, 0)
  const r = list.lookup(kp.fingerprint, NOW, kp.publicKeyRaw)
  assert.equal(r.status, 'ok')
  assert.equal(completed.length, 1)
  assert.deepEqual(completed[0]?.publicKeyRaw, kp.publicKeyRaw)
  assert.equal(toFileRecord(completed[0]!).public_key, kp.publicKeyRaw.toString('base64url'))
  // Afterwards the key is there even without publicKeyRaw, and the callback does not fire again.
  const again = list.lookup(kp.fingerprint, NOW)
  assert.equal(again.status, 'ok')
  assert.equal(completed.length, 1)
  if (r.status === 'ok' && again.status === 'ok') assert.equal(r.publicKey, again.publicKey)
})

test('add: duplicate refused unless replace; bad fingerprint refused', () => {
  const kp = generateKeyPair()
  const list = new Allowlist()
  list.add({ publicKeyRaw: kp.publicKeyRaw, description: 'one' })
  assert.throws(() => list.add({ publicKeyRaw: kp.publicKeyRaw }), isAuthError('allowlist_entry_exists'))
  list.add({ publicKeyRaw: kp.publicKeyRaw, description: 'two' }, { replace: true })
  assert.equal(list.get(kp.fingerprint)?.description, 'two')
  assert.equal(list.size, 1)
  assert.throws(() => list.add({ fingerprint: 'a1b2c3d4...' }), isAuthError('allowlist_invalid', /64 hex/))
  assert.equal(list.remove(kp.fingerprint), true)
  assert.equal(list.remove(kp.fingerprint), false)
  assert.equal(list.size, 0)
})

test('findByPrefix: unique prefix, exact, none, ambiguous', () => {
  const list = new Allowlist()
  const a = 'abcd1234' + '0'.repeat(56)
  const b = 'abcd1234' + '1'.repeat(56)
  const c = 'ffff0000' + '2'.repeat(56)
  for (const fp of [a, b, c]) list.add({ fingerprint: fp })
  assert.equal(list.findByPrefix('FFFF0000')?.fingerprint, c)
  assert.equal(list.findByPrefix(a)?.fingerprint, a)
  assert.equal(list.findByPrefix('abcd12340')?.fingerprint, a)
  assert.equal(list.findByPrefix('12345678'), undefined)
  assert.throws(() => list.findByPrefix('abcd1234'), isAuthError('allowlist_entry_not_found', /ambiguous/))
})

test('round trip: toJSON → fromJSON keeps every field (line layout)', () => {
  const list = new Allowlist()
  const kp = generateKeyPair()
  list.add({ publicKeyRaw: kp.publicKeyRaw, description: 'd "quoted"\nnewline', metadata: { role: 'r', nested: { a: [1, 2] } }, addedBy: 'me@host', notAfter: '2031-01-01' })
  list.add({ fingerprint: 'c'.repeat(64) })
  const text = list.toJSON(NOW)
  assert.equal(text.split('\n').length, 7 + 2, 'one line per entry (plus 6 framing lines and the final newline)')
  const back = Allowlist.fromJSON(text, 'rt.json')
  assert.deepEqual([...back.entries()].map(toFileRecord), [...list.entries()].map(toFileRecord))
  // The same text reformatted (not the line layout) parses to the same list.
  const pretty = JSON.stringify(JSON.parse(text), null, 4)
  assert.deepEqual([...Allowlist.fromJSON(pretty, 'p.json').entries()].map(toFileRecord), [...list.entries()].map(toFileRecord))
  assert.equal(Allowlist.fromJSON(new Allowlist().toJSON(), 'e.json').size, 0)
})

test('legacy Python format loads: version "1.0", keys array, standard base64', () => {
  const text = readFileSync(FIXTURES + 'python-legacy.json', 'utf8')
  const list = Allowlist.fromJSON(text, 'python-legacy.json')
  assert.equal(list.size, 1)
  const fp = '5b42e8394b271dcd898d6fec4b321e1bfed5fb676bcdf23faf539890a0083788'
  const entry = list.get(fp)
  assert.ok(entry)
  assert.equal(entry.description, 'Test client key')
  assert.equal(entry.addedBy, 'CLI test')
  const pub = readFileSync(FIXTURES + 'python-client-test.pub', 'utf8').split('\n')[1]!
  assert.deepEqual(entry.publicKeyRaw, Buffer.from(pub, 'base64'))
  assert.equal(fingerprintOf(entry.publicKeyRaw!), fp)
  assert.equal(list.lookup(fp, NOW).status, 'ok')
  // Saved in our format: public_key becomes base64url.
  const ours = JSON.parse(list.toJSON()) as { version: number; keys: Record<string, { public_key: string }> }
  assert.equal(ours.version, 1)
  assert.equal(ours.keys[fp]?.public_key, Buffer.from(pub, 'base64').toString('base64url'))
})

test('a bare array of entries is accepted (import form)', () => {
  const kp = generateKeyPair()
  const list = Allowlist.fromJSON(JSON.stringify([{ public_key: kp.publicKeyRaw.toString('base64'), metadata: { role: 'x' } }]), 'arr.json')
  assert.equal(list.get(kp.fingerprint)?.metadata.role, 'x')
  assert.throws(
    () => Allowlist.fromJSON(JSON.stringify([{ fingerprint: kp.fingerprint }, { fingerprint: kp.fingerprint }]), 'dup.json'),
    isAuthError('allowlist_invalid', /listed twice/),
  )
})

test('a fingerprint that does not match its key is an error naming the entry', () => {
  const kp = generateKeyPair()
  const wrong = 'd'.repeat(64)
  const text = JSON.stringify({ version: 1, keys: { [wrong]: { fingerprint: wrong, public_key: kp.publicKeyRaw.toString('base64url'), metadata: {} } } })
  assert.throws(() => Allowlist.fromJSON(text, '/etc/al.json'), isAuthError('allowlist_invalid', new RegExp(`^/etc/al\\.json: entry ${wrong}: fingerprint does not match`)))
  // Same in the line layout.
  const good = new Allowlist()
  good.add({ publicKeyRaw: kp.publicKeyRaw })
  const tampered = good.toJSON().replaceAll(kp.fingerprint, wrong)
  assert.throws(() => Allowlist.fromJSON(tampered, 'line.json'), isAuthError('allowlist_invalid', /entry d{64}: fingerprint does not match/))
})

test('corrupt JSON: error names the file and the position', () => {
  assert.throws(() => Allowlist.fromJSON('{\n  "version": 1,\n  "keys": {,\n}', '/srv/allowlist.json'), isAuthError('allowlist_invalid', /^\/srv\/allowlist\.json: invalid JSON at line 3 column \d+: /))
  assert.throws(() => Allowlist.fromJSON('', 'empty.json'), isAuthError('allowlist_invalid', /^empty\.json: invalid JSON at line 1 column 1/))
  assert.throws(() => Allowlist.fromJSON('{"version": 2, "keys": {}}', 'v2.json'), isAuthError('allowlist_invalid', /unsupported allowlist version 2/))
  assert.throws(() => Allowlist.fromJSON('{"version": 1, "keys": {"x": 5}}', 'bad.json'), isAuthError('allowlist_invalid', /entry x: must be an object/))
  assert.throws(
    () => Allowlist.fromJSON(JSON.stringify({ version: 1, keys: [{ fingerprint: 'e'.repeat(64), public_key: 'not-a-key' }] }), 'k.json'),
    isAuthError('allowlist_invalid', /public_key is not a base64 32-byte/),
  )
})
