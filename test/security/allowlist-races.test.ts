/**
 * Allowlist races: an operator's change to the allowlist file is never undone by the server, and
 * a handshake is judged on the entry as the file has it now; concurrent writers all succeed and
 * clean up after writers that were killed, and a stale lock (with a breaker that died) neither
 * loses an entry nor makes a waiter spin past its timeout.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { AllowlistHolder, loadAllowlistFile, persistCompletedEntry, updateAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { makeHarness, expectCode } from '../helpers/handshake-harness.js'
import { makeParties } from '../helpers/fixtures.js'
import { acquireFileLock } from '../../src/allowlist/file-lock.js'
import { onCleanup } from './helpers/cleanup.js'
import { sandbox } from './helpers/sandbox-servers.js'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

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

// ------------------------------------------------------------------ concurrent and killed writers

const ALLOWLIST_BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-allowlist.js')

/** A 20,000-entry allowlist (fingerprint-only entries: no key generation needed). */
async function bigAllowlist(path: string, entries = 20_000): Promise<void> {
  await updateAllowlistFile(path, (l) => {
    for (let i = 0; i < entries; i++) l.add({ fingerprint: randomBytes(32).toString('hex'), description: `host ${i}`, metadata: { role: 'user' } })
  })
}

function runAdd(path: string, fingerprint: string): { child: ChildProcess; done: Promise<{ code: number | null; stderr: string }> } {
  const child = spawn(process.execPath, [ALLOWLIST_BIN, 'add', '--allowlist', path, '--fingerprint', fingerprint, '--description', 'concurrent'], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  return { child, done: new Promise((r) => child.once('exit', (code) => r({ code, stderr }))) }
}

test('24 concurrent mcp-allowlist add on a 20,000-entry allowlist all succeed, and none is lost', { timeout: 240_000 }, async () => {
  assert.ok(existsSync(ALLOWLIST_BIN), `${ALLOWLIST_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    await bigAllowlist(path)
    const fps = Array.from({ length: 24 }, () => randomBytes(32).toString('hex'))
    const results = await Promise.all(fps.map((fp) => runAdd(path, fp).done))
    const failed = results.filter((r) => r.code !== 0)
    assert.deepEqual(failed.map((r) => r.stderr.trim()), [], `${failed.length} of 24 gave up`)
    const list = await loadAllowlistFile(path)
    assert.equal(list.size, 20_024)
    for (const fp of fps) assert.ok(list.get(fp), `${fp.slice(0, 12)} is listed`)
  })
})

test('the next writer removes temp files left by writers killed mid-write (and only those of dead writers)', { timeout: 240_000 }, async () => {
  assert.ok(existsSync(ALLOWLIST_BIN), `${ALLOWLIST_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  await withDir(async (dir) => {
    const path = join(dir, 'allowlist.json')
    await bigAllowlist(path)
    // Writers killed at random moments (some while writing their temp file).
    for (let i = 0; i < 8; i++) {
      const { child, done } = runAdd(path, randomBytes(32).toString('hex'))
      await sleep(100 + Math.floor(Math.random() * 500))
      child.kill('SIGKILL')
      await done
    }
    // And for certain: a dead writer's temp file, and one of a live process (another writer at work).
    const dead = spawn(process.execPath, ['-e', ''])
    await new Promise((r) => dead.once('exit', r))
    const deadTemp = join(dir, `.allowlist.json.${dead.pid}.${'a'.repeat(12)}.tmp`)
    await writeFile(deadTemp, '{"partial":')
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'])
    const liveTemp = join(dir, `.allowlist.json.${live.pid}.${'b'.repeat(12)}.tmp`)
    try {
      await writeFile(liveTemp, '{"in progress":')
      const temps = async (): Promise<string[]> => (await readdir(dir)).filter((n) => n.endsWith('.tmp'))
      // A dead writer's temp file is removed once it is 5 s old (a younger one may be a writer that
      // just started): age them all, those of the writers killed above included, which may be
      // younger than that when the commands start fast.
      const old = new Date(Date.now() - 60_000)
      for (const name of await temps()) await utimes(join(dir, name), old, old)
      assert.ok((await temps()).includes(basename(deadTemp)))
      // Dead writers' lock files are broken as before; a fresh writer succeeds and cleans up.
      const { done } = runAdd(path, randomBytes(32).toString('hex'))
      const r = await done
      assert.equal(r.code, 0, r.stderr)
      assert.deepEqual(await temps(), [basename(liveTemp)], 'only the live writer’s temp file is left')
      assert.ok((await loadAllowlistFile(path)).size >= 20_001, 'the allowlist is intact')
    } finally {
      live.kill('SIGKILL')
    }
  })
})

// From the red-team round 3, finding 5 (fixed).
test('acquireFileLock facing a stale lock and a breaker file that looks alive (killed in the last 5 s, or dated in the future) sleeps while it waits and honours its timeout', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-security-lock-'))
  onCleanup(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'allowlist.json')
  await writeFile(path, '{}')
  const deadLock = `999999999 ${hostname()} 1 00\n` // a pid that cannot exist: stale
  // 1. a breaker dated an hour ahead: it is stale too, removed, and the lock is taken
  await writeFile(`${path}.lock`, deadLock)
  await writeFile(`${path}.lock.break`, '')
  const future = new Date(Date.now() + 3600_000)
  await utimes(`${path}.lock.break`, future, future)
  const release = await acquireFileLock(path, { timeoutMs: 3000 })
  await release()
  assert.deepEqual((await readdir(dir)).sort(), ['allowlist.json'])
  // 2. a breaker that just died: the waiter waits (sleeping) and honours its timeout
  await writeFile(`${path}.lock`, deadLock)
  await writeFile(`${path}.lock.break`, '')
  let loops = 0
  const spin = setInterval(() => loops++, 1)
  const outcome = await Promise.race([
    acquireFileLock(path, { timeoutMs: 300 }).then(
      async (rel) => {
        await rel()
        return 'acquired'
      },
      (e: Error & { code?: string }) => e.code,
    ),
    new Promise((r) => setTimeout(() => r('hung past its timeout'), 8000)),
  ])
  clearInterval(spin)
  assert.equal(outcome, 'allowlist_invalid')
  assert.ok(loops > 0, 'the event loop ran while waiting')
  // 3. with the default timeout it gets through once the dead breaker is stale
  await rm(`${path}.lock.break`)
  const old = new Date(Date.now() - 60_000)
  await writeFile(`${path}.lock.break`, '')
  await utimes(`${path}.lock.break`, old, old)
  await (await acquireFileLock(path, { timeoutMs: 2000 }))()
  assert.deepEqual((await readdir(dir)).sort(), ['allowlist.json'])
})

// From the red-team round 3 (held).
test('3 × 12 concurrent `mcp-allowlist add` processes with a stale lock and a dead breaker planted each round lose no entry and leave no lock', async () => {
  assert.ok(existsSync(ALLOWLIST_BIN), `${ALLOWLIST_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  const sb = await sandbox()
  const path = sb.serverAllowlistPath
  const fps: string[] = []
  for (let round = 0; round < 3; round++) {
    await writeFile(`${path}.lock`, `999999999 ${hostname()} ${Date.now()} 00\n`)
    await writeFile(`${path}.lock.break`, '')
    const old = new Date(Date.now() - 60_000)
    await utimes(`${path}.lock.break`, old, old)
    const batch = Array.from({ length: 12 }, (_, i) => (round * 16 + i + 1).toString(16).padStart(2, '0').repeat(32))
    fps.push(...batch)
    const runs = await Promise.all(
      batch.map(
        (fp) =>
          new Promise<{ status: number | null; stderr: string }>((r) => {
            const child = spawn(process.execPath, [ALLOWLIST_BIN, 'add', '--config', sb.serverConfigPath, '--fingerprint', fp], { stdio: ['ignore', 'ignore', 'pipe'] })
            let stderr = ''
            child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
            child.on('close', (status) => r({ status, stderr }))
          }),
      ),
    )
    for (const r of runs) assert.equal(r.status, 0, r.stderr)
    const keys = Object.keys((JSON.parse(await readFile(path, 'utf8')) as { keys: Record<string, unknown> }).keys)
    for (const fp of fps) assert.ok(keys.includes(fp), `round ${round}: ${fp.slice(0, 8)} lost`)
    const left = (await readdir(join(path, '..'))).filter((n) => n.includes('.lock'))
    assert.deepEqual(left, [], 'no lock or breaker left')
  }
})
