import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, readdir, rm, stat, writeFile, chmod, rename } from 'node:fs/promises'
import { tmpdir, hostname } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { Allowlist } from '../../../src/allowlist/allowlist.js'
import {
  AllowlistHolder,
  loadAllowlistFile,
  persistCompletedEntry,
  saveAllowlistFile,
  updateAllowlistFile,
  watchAllowlistFile,
} from '../../../src/allowlist/allowlist-file.js'
import { acquireFileLock } from '../../../src/allowlist/file-lock.js'
import { AuthError } from '../../../src/errors.js'
import { generateKeyPair } from '../../../src/keys/key-pair.js'

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'allowlist-file-'))
  try {
    await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

function listOf(n: number): Allowlist {
  const list = new Allowlist()
  for (let i = 0; i < n; i++) list.add({ publicKeyRaw: generateKeyPair().publicKeyRaw, metadata: { role: `r${i % 3}` }, description: `key ${i}` })
  return list
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (cond()) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return cond()
}

test('missing file: error without autoCreate; autoCreate writes an empty list', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    await assert.rejects(loadAllowlistFile(path), (err: unknown) => err instanceof AuthError && err.code === 'allowlist_invalid' && err.message.startsWith(`${path}: allowlist file not found`))
    const list = await loadAllowlistFile(path, { autoCreate: true })
    assert.equal(list.size, 0)
    const onDisk = JSON.parse(await readFile(path, 'utf8')) as { version: number; keys: object }
    assert.equal(onDisk.version, 1)
    assert.deepEqual(onDisk.keys, {})
  })
})

test('corrupt file: error names the path; autoCreate and updates never replace it', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    const garbage = '{"version": 1, "keys": {"abc": '
    await writeFile(path, garbage)
    const isInvalid = (err: unknown): boolean =>
      err instanceof AuthError && err.code === 'allowlist_invalid' && err.message.startsWith(`${path}: invalid JSON at line 1 column`)
    await assert.rejects(loadAllowlistFile(path, { autoCreate: true }), isInvalid)
    await assert.rejects(updateAllowlistFile(path, (l) => void l.add({ fingerprint: 'a'.repeat(64) })), isInvalid)
    assert.equal(await readFile(path, 'utf8'), garbage)
    assert.deepEqual((await readdir(dir)).sort(), ['allowlist.json'], 'no lock or temp file left behind')
  })
})

test('update: read-modify-write keeps the file mode, leaves no temp or lock file', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    await saveAllowlistFile(path, listOf(2))
    await chmod(path, 0o640)
    const kp = generateKeyPair()
    const written = await updateAllowlistFile(path, (l) => void l.add({ publicKeyRaw: kp.publicKeyRaw }))
    assert.equal(written.size, 3)
    assert.equal((await stat(path)).mode & 0o777, 0o640)
    assert.equal((await loadAllowlistFile(path)).lookup(kp.fingerprint, Date.now()).status, 'ok')
    assert.deepEqual(await readdir(dir), ['allowlist.json'])
    // dry run: mutate runs, nothing is written
    const before = await readFile(path, 'utf8')
    const dry = await updateAllowlistFile(path, (l) => void l.remove(kp.fingerprint), { dryRun: true })
    assert.equal(dry.size, 2)
    assert.equal(await readFile(path, 'utf8'), before)
    // a throwing mutation writes nothing
    await assert.rejects(updateAllowlistFile(path, () => { throw new Error('nope') }), /nope/)
    assert.equal(await readFile(path, 'utf8'), before)
  })
})

test('large file is read in chunks (line layout spanning many 1 MiB reads)', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'big.json')
    const list = listOf(6000) // ≈ 2 MB
    await saveAllowlistFile(path, list)
    assert.ok((await stat(path)).size > 1.5 * 1024 * 1024)
    const back = await loadAllowlistFile(path)
    assert.equal(back.size, 6000)
    for (const e of list.entries()) assert.equal(back.get(e.fingerprint)?.description, e.description)
  })
})

test('lock: held lock makes a writer wait and then time out; a dead holder\'s lock is broken at once', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    const release = await acquireFileLock(path)
    const t0 = Date.now()
    await assert.rejects(acquireFileLock(path, { timeoutMs: 300 }), (err: unknown) => err instanceof AuthError && /locked by another process/.test(err.message))
    assert.ok(Date.now() - t0 >= 290)
    await release()
    // A lock left by a process that no longer exists.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' })
    const deadPid = Number(dead.stdout)
    await writeFile(`${path}.lock`, `${deadPid} ${hostname()} ${Date.now()} deadbeef\n`)
    const t1 = Date.now()
    const release2 = await acquireFileLock(path, { timeoutMs: 5000 })
    assert.ok(Date.now() - t1 < 1000, 'stale lock broken quickly')
    await release2()
    // A lock older than 30 s is stale whatever its pid.
    await writeFile(`${path}.lock`, `${process.ppid} ${hostname()} ${Date.now() - 31_000} cafe\n`)
    const release3 = await acquireFileLock(path, { timeoutMs: 2000 })
    await release3()
    assert.deepEqual(await readdir(dir), [])
  })
})

test('watcher: removal becomes visible through the holder; garbage keeps the last good list', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    const kp1 = generateKeyPair()
    const kp2 = generateKeyPair()
    const list = new Allowlist()
    list.add({ publicKeyRaw: kp1.publicKeyRaw })
    list.add({ publicKeyRaw: kp2.publicKeyRaw })
    await saveAllowlistFile(path, list)
    const holder = new AllowlistHolder(await loadAllowlistFile(path))
    const reloads: number[] = []
    const errors: AuthError[] = []
    const watcher = watchAllowlistFile(path, holder, { onReload: (l) => reloads.push(l.size), onError: (e) => errors.push(e) })
    try {
      assert.equal(holder.lookup(kp2.fingerprint, Date.now()).status, 'ok')
      await new Promise((r) => setTimeout(r, 50))
      const t0 = Date.now()
      await updateAllowlistFile(path, (l) => void l.remove(kp2.fingerprint))
      assert.ok(await until(() => !holder.has(kp2.fingerprint, Date.now()), 4000), 'removal visible within 4 s')
      assert.ok(Date.now() - t0 < 4000)
      assert.equal(holder.lookup(kp2.fingerprint, Date.now()).status, 'unknown')
      assert.equal(holder.lookup(kp1.fingerprint, Date.now()).status, 'ok')
      assert.ok(reloads.includes(1))

      // A broken edit (written in place, not renamed): old list stays, error reported.
      await writeFile(path, '{"version": 1, "keys": {')
      assert.ok(await until(() => errors.length > 0, 2500), 'onError called')
      assert.equal(errors[0]?.code, 'allowlist_invalid')
      assert.match(errors[0]!.message, new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid JSON`))
      assert.equal(holder.has(kp1.fingerprint, Date.now()), true)
      assert.equal(holder.size, 1)

      // Fixed again, by rename-over (new inode): picked up.
      const fixed = new Allowlist()
      fixed.add({ publicKeyRaw: kp2.publicKeyRaw })
      await writeFile(join(dir, 'staged.json'), fixed.toJSON())
      await rename(join(dir, 'staged.json'), path)
      assert.ok(await until(() => holder.has(kp2.fingerprint, Date.now()), 2500))
      assert.equal(holder.has(kp1.fingerprint, Date.now()), false)
    } finally {
      watcher.close()
    }
  })
})

test('persistCompletedEntry writes the key of a completed fingerprint-only entry back to the file', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    const kp = generateKeyPair()
    await updateAllowlistFile(path, (l) => void l.add({ fingerprint: kp.fingerprint, metadata: { role: 'backup_server' } }))
    const list = await loadAllowlistFile(path)
    const done: Promise<unknown>[] = []
    const holder = new AllowlistHolder(list, (entry) => {
      const settled = persistCompletedEntry(path, entry)
      done.push(settled)
      return settled
    })
    assert.equal(holder.lookup(kp.fingerprint, Date.now(), kp.publicKeyRaw).status, 'ok')
    assert.equal(done.length, 1)
    await Promise.all(done)
    const reloaded = await loadAllowlistFile(path)
    assert.deepEqual(reloaded.get(kp.fingerprint)?.publicKeyRaw, kp.publicKeyRaw)
    assert.equal(reloaded.get(kp.fingerprint)?.metadata.role, 'backup_server')
  })
})

test('AllowlistHolder remembers which reload removed a key (and keeps it when the key comes back)', () => {
  const a = generateKeyPair()
  const b = generateKeyPair()
  const listAB = new Allowlist()
  listAB.add({ publicKeyRaw: a.publicKeyRaw })
  listAB.add({ publicKeyRaw: b.publicKeyRaw })
  let now = 1_000
  const holder = new AllowlistHolder(listAB, undefined, () => now)
  assert.equal(holder.removedAt(a.fingerprint), undefined)
  const listB = new Allowlist()
  listB.add({ publicKeyRaw: b.publicKeyRaw })
  assert.deepEqual(listAB.removedIn(listB), [a.fingerprint])
  assert.deepEqual(listB.removedIn(listAB), [])
  now = 2_000
  holder.current = listB
  assert.equal(holder.removedAt(a.fingerprint), 2_000)
  assert.equal(holder.removedAt(b.fingerprint), undefined)
  now = 3_000
  holder.current = listAB // a is back: its removal is still remembered
  assert.equal(holder.removedAt(a.fingerprint), 2_000)
  assert.equal(holder.lookup(a.fingerprint, now).status, 'ok')
  // a removal more than a day (or the session TTL) old is forgotten
  now = 2_000 + 24 * 3600 * 1000 + 1
  holder.current = listB
  assert.equal(holder.removedAt(a.fingerprint), now, 'removed again: the new time')
})

test('Allowlist.removedIn: removed entries (remove()) count as absent', () => {
  const a = generateKeyPair()
  const one = new Allowlist()
  one.add({ publicKeyRaw: a.publicKeyRaw })
  const two = new Allowlist()
  two.add({ publicKeyRaw: a.publicKeyRaw })
  two.remove(a.fingerprint)
  assert.deepEqual(one.removedIn(two), [a.fingerprint])
  assert.deepEqual(two.removedIn(one), [])
})
