import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadAllowlistFile } from '../../../src/allowlist/allowlist-file.js'
import { Allowlist, toFileRecord } from '../../../src/allowlist/allowlist.js'
import { AuthError } from '../../../src/errors.js'
import { generateKeyPair } from '../../../src/keys/key-pair.js'

// Correctness of the compact storage on a large list (not a timing test).
const N = 50_000
const NOW = Date.UTC(2027, 0, 1)
const UPDATED = '2026-06-01T00:00:00.000Z'

interface Rec {
  fingerprint: string
  public_key: string | null
  description: string | null
  added_at: string
  added_by: string | null
  metadata: Record<string, unknown>
  not_after?: string
}

/** Records of every shape: keyed and fingerprint-only, shared and unique fields, escapes, expiries. */
function records(): { recs: Rec[]; real: { index: number; raw: Buffer }[] } {
  const recs: Rec[] = []
  const real: { index: number; raw: Buffer }[] = []
  for (let i = 0; i < N; i++) {
    let raw: Buffer | undefined
    if (i % 1000 === 7) {
      raw = generateKeyPair().publicKeyRaw
      real.push({ index: i, raw })
    } else if (i % 10 !== 3) {
      raw = randomBytes(32)
    }
    const fingerprint = raw ? createHash('sha256').update(raw).digest('hex') : randomBytes(32).toString('hex')
    const rec: Rec = {
      fingerprint,
      public_key: raw ? raw.toString('base64url') : null,
      description: i % 7 === 0 ? null : i % 101 === 0 ? `quoted "desc" \\ ${i}\nline` : i % 53 === 0 ? `ünïcödé ключ ${i} 🔑` : `key ${i}`,
      added_at: i % 3 === 0 ? '2026-01-01T00:00:00.000Z' : new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
      added_by: i % 5 === 0 ? null : i % 2 === 0 ? 'ops@host' : `user${i % 17}@host`,
      metadata: i % 4 === 0 ? {} : i % 4 === 1 ? { role: 'trusted_client' } : { role: 'r', n: i, nested: { a: [i, 'x'] } },
    }
    if (i % 11 === 0) rec.metadata = { ...rec.metadata, expires: i % 22 === 0 ? '2026-12-31' : '2027-06-30' }
    if (i % 13 === 0) rec.not_after = i % 26 === 0 ? '2026-12-31T23:00:00Z' : '2028-01-01'
    recs.push(rec)
  }
  return { recs, real }
}

function layout(recs: readonly Rec[]): string {
  const lines = recs.map((r, i) => `    "${r.fingerprint}": ${JSON.stringify(r)}${i === recs.length - 1 ? '' : ','}`)
  return `{\n  "version": 1,\n  "updated_at": "${UPDATED}",\n  "keys": {\n${lines.join('\n')}\n  }\n}\n`
}

function expiryOf(r: Rec): number | undefined {
  const parse = (t: string): number => (/^\d{4}-\d{2}-\d{2}$/.test(t) ? Date.parse(t) + 86_400_000 : Date.parse(t))
  const a = r.not_after === undefined ? undefined : parse(r.not_after)
  const b = typeof r.metadata.expires === 'string' ? parse(r.metadata.expires) : undefined
  if (a === undefined) return b
  return b === undefined ? a : Math.min(a, b)
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'allowlist-scale-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

test(`${N} entries: load keeps every field and the order, saves the same text, lookups/has/expiry/completion work`, async () => {
  const { recs, real } = records()
  const text = layout(recs)
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    await writeFile(path, text)
    const list = await loadAllowlistFile(path)
    assert.equal(list.size, N)
    const loaded = [...list.entries()]
    assert.equal(loaded.length, N)
    for (let i = 0; i < N; i++) assert.deepEqual(toFileRecord(loaded[i]!), recs[i], `entry #${i}`)
    assert.equal(list.toJSON(Date.parse(UPDATED)), text, 'saved text is byte-identical')
    assert.deepEqual([...Allowlist.fromJSON(text, 'mem').entries()].map(toFileRecord), recs, 'fromJSON (in memory) agrees')

    for (let i = 0; i < N; i += 97) {
      const r = recs[i]!
      const exp = expiryOf(r)
      assert.equal(list.get(r.fingerprint)?.notAfter, exp, `notAfter #${i}`)
      const live = exp === undefined || NOW < exp
      assert.equal(list.has(r.fingerprint, NOW), live, `has #${i}`)
      assert.equal(list.has(r.fingerprint.toUpperCase(), NOW), false, 'lookups are by the lowercase fingerprint')
      const found = list.lookup(r.fingerprint, NOW)
      if (!live) assert.equal(found.status, 'expired', `#${i}`)
      else if (r.public_key === null) assert.equal(found.status, 'unknown', `fingerprint-only #${i} without a key`)
    }
    assert.equal(list.lookup('0'.repeat(64), NOW).status, 'unknown')
    assert.equal(list.lookup('not a fingerprint', NOW).status, 'unknown')

    // Real keys: lookup imports once and hands back the same KeyObject.
    for (const { index } of real) {
      const fp = recs[index]!.fingerprint
      const a = list.lookup(fp, NOW)
      const b = list.lookup(fp, NOW)
      assert.ok(a.status === 'ok' && b.status === 'ok', `real key #${index}`)
      assert.equal(a.publicKey, b.publicKey)
      assert.equal(a.entry, b.entry)
    }

    // A fingerprint-only entry added after load is completed by the first lookup with its key.
    const kp = generateKeyPair()
    list.add({ fingerprint: kp.fingerprint, description: 'late', metadata: { role: 'x' } })
    const completed: string[] = []
    list.onComplete = (e) => completed.push(e.fingerprint)
    assert.equal(list.lookup(kp.fingerprint, NOW).status, 'unknown')
    const c = list.lookup(kp.fingerprint, NOW, kp.publicKeyRaw)
    assert.equal(c.status, 'ok')
    assert.deepEqual(completed, [kp.fingerprint])
    assert.equal(list.get(kp.fingerprint)?.publicKeyRaw?.toString('base64url'), kp.publicKeyRaw.toString('base64url'))
  })
})

test('removing most entries (compaction) keeps lookups, order, replace-in-place and the saved text right', () => {
  const { recs } = records()
  const list = Allowlist.fromJSON(layout(recs), 'mem')
  const kept: Rec[] = []
  recs.forEach((r, i) => {
    if (i % 3 === 0) kept.push(r)
    else assert.equal(list.remove(r.fingerprint.toUpperCase()), true)
  })
  assert.equal(list.size, kept.length)
  assert.equal(list.remove(recs[1]!.fingerprint), false)
  assert.equal(list.get(recs[1]!.fingerprint), undefined)
  assert.equal(list.has(recs[1]!.fingerprint, 0), false)
  for (const r of kept) assert.equal(list.get(r.fingerprint)?.fingerprint, r.fingerprint)
  // replace keeps the position; a re-added removed entry goes to the end
  const target = kept[5]!
  list.add({ fingerprint: target.fingerprint, description: 'replaced' }, { replace: true, now: 0 })
  const back = recs[1]!
  list.put(Allowlist.fromJSON(layout([back]), 'one').get(back.fingerprint)!)
  const order = [...list.entries()].map((e) => e.fingerprint)
  assert.deepEqual(order, [...kept.map((r) => r.fingerprint), back.fingerprint])
  assert.equal(list.get(target.fingerprint)?.description, 'replaced')
  assert.equal(list.get(target.fingerprint)?.publicKeyRaw, undefined, 'replaced by a fingerprint-only entry')
  assert.equal(list.findByPrefix(back.fingerprint.slice(0, 20).toUpperCase())?.fingerprint, back.fingerprint)
  const again = Allowlist.fromJSON(list.toJSON(0), 'again')
  assert.deepEqual([...again.entries()].map(toFileRecord), [...list.entries()].map(toFileRecord))
})

test('a fingerprint that does not match its key deep in a large file is an error naming that entry', async () => {
  const { recs } = records()
  const bad = recs.findIndex((r, i) => i > N / 2 && r.public_key !== null)
  const wrong = 'e'.repeat(64)
  const tampered = recs.map((r, i) => (i === bad ? { ...r, fingerprint: wrong } : r))
  const text = layout(tampered).replace(`"${recs[bad]!.fingerprint}": `, `"${wrong}": `)
  await withDir(async (dir) => {
    const path = join(dir, 'bad.json')
    await writeFile(path, text)
    await assert.rejects(
      loadAllowlistFile(path),
      (err: unknown) => err instanceof AuthError && err.code === 'allowlist_invalid' && new RegExp(`entry ${wrong}: fingerprint does not match public_key`).test(err.message),
    )
  })
})
