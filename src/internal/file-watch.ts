/**
 * Watching one file that is replaced by rename (allowlists, policies): fs.watch on its directory,
 * since a rename-over replaces the inode, plus a stat poll for file systems where fs.watch says
 * nothing. A change is a new (inode, size, mtime, ctime); reloads never overlap, and a change seen
 * while one runs makes it run once more.
 * @module
 */
import { watch, type FSWatcher } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename, dirname } from 'node:path'

/** What identifies one version of a file: inode, size and times, or why it cannot be read. */
export async function fileSignature(path: string): Promise<string> {
  try {
    const st = await stat(path, { bigint: true })
    return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    return code === 'ENOENT' ? 'missing' : `error:${code}`
  }
}

export interface FileChangeWatchOptions {
  /** Called (never twice at once) when the file's signature differs from the last one seen. */
  onChange(): Promise<void>
  /** The signature of the version already loaded; when absent, the first one read is taken as it. */
  initialSignature?: string
  pollIntervalMs: number
  debounceMs: number
}

export interface FileChangeWatch {
  /** Checks now; resolves when the reload it started (or the one running) is done. */
  check(): Promise<void>
  close(): void
}

/** Watches `path` and calls `onChange` once per new version of it. */
export function watchFileChanges(path: string, options: FileChangeWatchOptions): FileChangeWatch {
  let lastSig = options.initialSignature
  let closed = false
  let running: Promise<void> | undefined
  let again = false
  let debounce: NodeJS.Timeout | undefined
  if (lastSig === undefined) void fileSignature(path).then((sig) => (lastSig ??= sig))

  const reloadIfChanged = async (): Promise<void> => {
    const sig = await fileSignature(path)
    if (sig === lastSig || closed) return
    lastSig = sig
    await options.onChange()
  }
  const check = (): Promise<void> => {
    if (running !== undefined) {
      again = true
      return running
    }
    running = (async () => {
      do {
        again = false
        await reloadIfChanged()
      } while (again && !closed)
    })().finally(() => (running = undefined))
    return running
  }

  const name = basename(path)
  let watcher: FSWatcher | undefined
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, filename) => {
      if (filename !== null && filename !== name) return
      if (debounce !== undefined) clearTimeout(debounce)
      debounce = setTimeout(() => void check(), options.debounceMs)
      debounce.unref()
    })
    watcher.on('error', () => {
      // the poll below still sees every change
      watcher?.close()
      watcher = undefined
    })
  } catch {
    watcher = undefined
  }
  const poll = setInterval(() => void check(), options.pollIntervalMs)
  poll.unref()

  return {
    check,
    close() {
      closed = true
      clearInterval(poll)
      if (debounce !== undefined) clearTimeout(debounce)
      watcher?.close()
    },
  }
}

export interface ReloadOnChangeOptions<T> {
  /** Reads and checks a new version of the file; throws when it is refused. */
  load(): Promise<T>
  /** Puts a loaded version in force (never after close). */
  apply(next: T): void
  /** A version that was refused (or whose apply threw); the last good one stays (never after close). */
  refused(err: unknown): void
  initialSignature?: string
  pollIntervalMs: number
  debounceMs: number
}

/** Watches `path` and, for each new version, loads it and applies it, or reports it refused. */
export function reloadOnChange<T>(path: string, options: ReloadOnChangeOptions<T>): FileChangeWatch {
  let closed = false
  const watcher = watchFileChanges(path, {
    ...(options.initialSignature === undefined ? {} : { initialSignature: options.initialSignature }),
    pollIntervalMs: options.pollIntervalMs,
    debounceMs: options.debounceMs,
    async onChange() {
      try {
        const next = await options.load()
        if (closed) return
        options.apply(next)
      } catch (err) {
        if (!closed) options.refused(err)
      }
    },
  })
  return {
    check: watcher.check,
    close() {
      closed = true
      watcher.close()
    },
  }
}
