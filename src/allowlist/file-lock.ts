/**
 * Cross-process lock and crash-safe writes for files several processes may rewrite (the allowlist).
 *
 * Lock: `${path}.lock` created with O_EXCL, holding `pid host time token`. A waiter retries with
 * backoff; a lock whose holder process is gone (same host) or that is older than 30 s is broken.
 * Write: temp file in the same directory, fsync, rename over the target, fsync the directory — a
 * reader (or a crash at any moment) sees either the old or the new file, never a mix.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { open, readFile, readdir, rename, stat, lstat, unlink, chmod } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { hostname } from 'node:os'
import { AuthError } from '../errors.js'

/** A lock older than this is considered abandoned whatever its holder. */
export const STALE_LOCK_MS = 30_000
/** An empty lock file (holder died between create and write) is abandoned after this. */
const EMPTY_LOCK_MS = 2_000

export interface LockOptions {
  /**
   * Give up when one holder keeps the lock this long (default 10 s). The wait starts over each
   * time the lock changes hands, so any number of writers queued behind each other all get
   * through as long as each one is quick; {@link MAX_LOCK_WAIT_MS} bounds the whole wait.
   */
  timeoutMs?: number
}

/** The longest a writer waits for the lock in all, however often it changes hands. */
export const MAX_LOCK_WAIT_MS = 5 * 60_000

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Why an existing lock may be broken, or undefined while it is live. */
async function staleReason(lockPath: string, content: string): Promise<string | undefined> {
  const [pidText, host, timeText] = content.trim().split(' ')
  const pid = Number(pidText)
  const time = Number(timeText)
  if (content.trim() === '' || !Number.isInteger(pid) || !Number.isFinite(time)) {
    let mtime: number
    try {
      mtime = (await stat(lockPath)).mtimeMs
    } catch {
      return undefined
    }
    return Date.now() - mtime > EMPTY_LOCK_MS ? 'unreadable lock file' : undefined
  }
  if (host === hostname() && pid !== process.pid && !processAlive(pid)) return `holder pid ${pid} is gone`
  if (Date.now() - time > STALE_LOCK_MS) return `lock is older than ${STALE_LOCK_MS / 1000} s`
  return undefined
}

/** A breaker lock older than this (or dated this far in the future) belongs to a breaker that died; it is removed. */
const STALE_BREAKER_MS = 5_000

/**
 * Breaks a stale lock without clobbering a fresh one that replaced it meanwhile. One breaker at a
 * time (`${lockPath}.break`, O_EXCL); under it the lock is read again and removed only if it is
 * still exactly the one judged stale. (Moving a lock aside and putting it back is not safe: while
 * it is away another process can take the lock, and then two hold it.) Resolves to true when the
 * stale lock is gone; false when another breaker is at work (the caller waits like any waiter).
 */
async function breakLock(lockPath: string, judged: string): Promise<boolean> {
  const breaker = `${lockPath}.break`
  const mine = `${process.pid} ${randomBytes(8).toString('hex')}\n`
  let fh
  try {
    fh = await open(breaker, 'wx', 0o644)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const st = await stat(breaker).catch(() => undefined)
      // A clock stepped back leaves a breaker dated in the future: that one is stale too.
      if (st !== undefined && Math.abs(Date.now() - st.mtimeMs) > STALE_BREAKER_MS) await unlink(breaker).catch(() => {})
    }
    return false
  }
  try {
    try {
      await fh.writeFile(mine)
    } finally {
      await fh.close()
    }
    const now = await readFile(lockPath, 'utf8').catch(() => undefined)
    if (now !== judged) return true // already released or replaced: the stale lock is gone
    return await unlink(lockPath).then(
      () => true,
      (err: NodeJS.ErrnoException) => err.code === 'ENOENT',
    )
  } finally {
    // Only our own breaker: if we stalled past STALE_BREAKER_MS another may hold it now.
    if ((await readFile(breaker, 'utf8').catch(() => undefined)) === mine) await unlink(breaker).catch(() => {})
  }
}

/**
 * Takes the lock for `path` (`${path}.lock`). Resolves to a release function. Throws
 * AuthError(allowlist_invalid) when the lock stays held past the timeout.
 */
export async function acquireFileLock(path: string, options: LockOptions = {}): Promise<() => Promise<void>> {
  const lockPath = `${path}.lock`
  const perHolderMs = options.timeoutMs ?? 10_000
  const started = Date.now()
  const overall = started + Math.max(perHolderMs, MAX_LOCK_WAIT_MS)
  let deadline = started + perHolderMs
  let holder: string | undefined
  const token = `${process.pid} ${hostname()} ${Date.now()} ${randomBytes(8).toString('hex')}\n`
  let delay = 5
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx', 0o644)
      try {
        await fh.writeFile(token)
      } finally {
        await fh.close()
      }
      return async () => {
        try {
          if ((await readFile(lockPath, 'utf8')) === token) await unlink(lockPath)
        } catch {
          // already gone (broken as stale): nothing to release
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    let content: string | undefined
    try {
      content = await readFile(lockPath, 'utf8')
    } catch {
      continue // released meanwhile: try again at once
    }
    // Stale: break it and try again at once. If another process is breaking it (or a dead
    // breaker's file is in the way), wait like any waiter: the deadline still applies.
    if ((await staleReason(lockPath, content)) !== undefined && (await breakLock(lockPath, content))) continue
    const now = Date.now()
    // Another holder than last time: the queue is moving, the wait starts over (bounded overall).
    if (content !== holder) {
      holder = content
      deadline = Math.min(now + perHolderMs, overall)
    }
    if (now >= deadline) {
      const pid = content.split(' ')[0]
      const waited = Math.round((now - started) / 1000)
      throw new AuthError(
        'allowlist_invalid',
        now >= overall
          ? `${path}: could not get the lock in ${waited} s (other writers kept it busy; last holder pid ${pid}); try again`
          : `${path}: locked by another process (pid ${pid}) for over ${Math.round(perHolderMs / 1000)} s; if that process is stuck or gone, remove ${lockPath}, then try again`,
        { path },
      )
    }
    await sleep(delay + Math.floor(Math.random() * delay))
    delay = Math.min(delay * 2, 100)
  }
}

/** Runs `fn` while holding the lock for `path`. */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const release = await acquireFileLock(path, options)
  try {
    return await fn()
  } finally {
    await release()
  }
}

/** A temp file of a writer that is gone is removed once it is this old (its writer died mid-write). */
const DEAD_WRITER_TEMP_MS = 5_000
/** A temp file this old is removed whoever wrote it (a writer on another host sharing the directory). */
const ABANDONED_TEMP_MS = 3_600_000

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * Removes the temp files of {@link writeFileAtomic} for `path` that writers killed mid-write left
 * behind: those of a process that no longer runs (and at least 5 s old), and any over an hour
 * old. Our own process's are left alone. Best effort; meant to run under the file's lock, when no
 * live writer should have one in progress. Resolves to the number removed.
 */
export async function removeDeadWritersTempFiles(path: string): Promise<number> {
  const dir = dirname(path)
  const pattern = new RegExp(`^\\.${escapeRegExp(basename(path))}\\.(\\d+)\\.[0-9a-f]{12}\\.tmp$`)
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return 0
  }
  let removed = 0
  for (const name of names) {
    const m = pattern.exec(name)
    if (m === null) continue
    const pid = Number(m[1])
    if (pid === process.pid) continue
    const file = join(dir, name)
    const st = await lstat(file).catch(() => undefined)
    if (st === undefined || !st.isFile()) continue
    const age = Date.now() - st.mtimeMs
    if ((age > DEAD_WRITER_TEMP_MS && !processAlive(pid)) || age > ABANDONED_TEMP_MS) {
      if (await unlink(file).then(() => true, () => false)) removed++
    }
  }
  return removed
}

/**
 * Writes `data` to `path` atomically: temp file `.${name}.${pid}.${random}.tmp` in the same
 * directory (mode of the existing file, else 0644), fsync, rename over, fsync the directory.
 * First removes temp files that killed writers left behind ({@link removeDeadWritersTempFiles}).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path)
  await removeDeadWritersTempFiles(path)
  let mode = 0o644
  try {
    mode = (await stat(path)).mode & 0o777
  } catch {
    // new file
  }
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', mode)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } catch (err) {
    await fh.close().catch(() => {})
    await unlink(tmp).catch(() => {})
    throw err
  }
  await fh.close()
  try {
    await chmod(tmp, mode) // the umask may have narrowed it
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw err
  }
  await syncDirectory(dir)
}

async function syncDirectory(dir: string): Promise<void> {
  let fh
  try {
    fh = await open(dir, 'r')
    await fh.sync()
  } catch {
    // some platforms cannot fsync a directory; the rename is still atomic
  } finally {
    await fh?.close().catch(() => {})
  }
}
