/**
 * Allowlist races: an operator's change to the allowlist file is never undone by the server, and
 * a handshake is judged on the entry as the file has it now; concurrent writers all succeed and
 * clean up after writers that were killed.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AllowlistHolder, loadAllowlistFile, persistCompletedEntry, updateAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { makeHarness, expectCode } from '../helpers/handshake-harness.js'
import { makeParties } from '../helpers/fixtures.js'

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'allowlist-races-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * A server whose allowlist holder was loaded from `path` and is never reloaded (the race window
 * held open): only the completion's compare-and-set sees the file as it is now.
 */
async function serverOnFile(path: string, parties = makeParties()): Promise<ReturnType<typeof makeHarness>> {
  const holder = new AllowlistHolder(await loadAllowlistFile(path), (entry) => persistCompletedEntry(path, entry))
  return makeHarness({ parties, server: { allowlist: holder }, verifier: { allowlist: holder } })
}

test('fingerprint-only completion: an operator downgrade made after loading is not overwritten, and the handshake is judged on it', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    const parties = makeParties()
    const fp = parties.client.fingerprint
    await updateAllowlistFile(path, (l) => void l.add({ fingerprint: fp, description: 'ops', metadata: { role: 'admin' } }))
    const h = await serverOnFile(path, parties)
    // The operator downgrades the entry (role user, expired) after the server loaded the list.
    await updateAllowlistFile(path, (l) => void l.add({ fingerprint: fp, description: 'downgraded', metadata: { role: 'user' }, notAfter: '2020-01-01T00:00:00Z' }, { replace: true }))
    await expectCode(() => h.run(), 'key_expired', 'handshake on the expired entry')
    const after = (await loadAllowlistFile(path)).get(fp)
    assert.ok(after, 'entry is still listed')
    assert.equal(after.metadata.role, 'user', 'the operator role stays')
    assert.equal(after.description, 'downgraded')
    assert.equal(after.notAfter, Date.parse('2020-01-01T00:00:00Z'), 'the operator expiry stays')
  })
})

test('fingerprint-only completion: a lower role set after loading is the role the session gets', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    const parties = makeParties()
    const fp = parties.client.fingerprint
    await updateAllowlistFile(path, (l) => void l.add({ fingerprint: fp, metadata: { role: 'admin' } }))
    const h = await serverOnFile(path, parties)
    await updateAllowlistFile(path, (l) => void l.add({ fingerprint: fp, metadata: { role: 'user' } }, { replace: true }))
    const run = await h.run()
    assert.equal(run.result.entry.metadata.role, 'user')
    const after = (await loadAllowlistFile(path)).get(fp)
    assert.equal(after?.metadata.role, 'user')
    assert.deepEqual(after?.publicKeyRaw, parties.client.publicKeyRaw, 'the key is recorded')
    // Later handshakes (no completion pending) see the current entry too.
    assert.equal((await h.run()).result.entry.metadata.role, 'user')
  })
})

test('fingerprint-only completion: an entry removed after loading refuses the handshake and is not written back', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    const parties = makeParties()
    const fp = parties.client.fingerprint
    await updateAllowlistFile(path, (l) => void l.add({ fingerprint: fp, metadata: { role: 'admin' } }))
    const h = await serverOnFile(path, parties)
    await updateAllowlistFile(path, (l) => void l.remove(fp))
    await expectCode(() => h.run(), 'unknown_key')
    assert.equal((await loadAllowlistFile(path)).get(fp), undefined)
  })
})
