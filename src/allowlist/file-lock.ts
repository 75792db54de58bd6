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
import { open, readFile, rename, stat, unlink, chmod } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { hostname } from 'node:os'
import { AuthError } from '../errors.js'

/** A lock older than this is considered abandoned whatever its holder. */
export const STALE_LOCK_MS = 30_000
/** An empty lock file (holder died between create and write) is abandoned after this. */
const EMPTY_LOCK_MS = 2_000

export interface LockOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number
}

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
  const deadline = Date.now() + (options.timeoutMs ?? 10_000)
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
    if (Date.now() >= deadline) {
      const pid = content.split(' ')[0]
      throw new AuthError(
        'allowlist_invalid',
        `${path}: locked by another process (pid ${pid}); if none is running, remove ${lockPath}`,
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

/**
 * Writes `data` to `path` atomically: temp file `.${name}.${pid}.${random}.tmp` in the same
 * directory (mode of the existing file, else 0644), fsync, rename over, fsync the directory.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path)
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
