/**
 * The allowlist on disk: load (streaming, for very large files), locked read-modify-write with
 * atomic replace, and a watcher that swaps in a new list when the file changes.
 *
 * A corrupt file is an error (AuthError allowlist_invalid naming the file and position) and is never
 * replaced by an empty list; `autoCreate` only applies when the file does not exist.
 * @module
 */
import { mkdir, open, readFile, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { AuthError } from '../errors.js'
import { reloadOnChange } from '../internal/file-watch.js'
import { Allowlist, ENTRY_LINE_BYTES, LineLayoutReader, entryHasKey } from './allowlist.js'
import { withFileLock, writeFileAtomic, type LockOptions } from './file-lock.js'
import type { AllowlistEntry, KeyLookup, LookupResult } from './types.js'
import type { CertAuthorityEntry } from './cert-authority.js'

export interface LoadAllowlistOptions {
  /** When the file does not exist: create an empty one (true) or throw (false, default). */
  autoCreate?: boolean
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
}

function fileError(path: string, err: unknown): AuthError {
  if (err instanceof AuthError) return err
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT') {
    return new AuthError('allowlist_invalid', `${path}: allowlist file not found (set acl.auto_create: true to start with an empty one)`, { path, cause: err })
  }
  return new AuthError('allowlist_invalid', `${path}: cannot read allowlist: ${code ?? (err as Error).message}`, { path, cause: err })
}

const CHUNK = 4 << 20
/** Longest line accepted by the line-layout reader (longer: not that layout, whole-text parse). */
const MAX_LINE = 1 << 20

/**
 * Reads the file a chunk at a time through the line-layout reader, as bytes (no string per line);
 * undefined = not that layout.
 */
async function readLineLayout(path: string): Promise<Allowlist | undefined> {
  const fh = await open(path, 'r')
  try {
    const reader = new LineLayoutReader(path, Math.floor((await fh.stat()).size / ENTRY_LINE_BYTES))
    let buf = Buffer.allocUnsafe(CHUNK)
    let filled = 0 // bytes in buf; buf[0..filled) starts at a line start
    for (;;) {
      if (filled === buf.length) {
        if (filled > MAX_LINE) return undefined // a huge single line: not our layout
        const bigger = Buffer.allocUnsafe(buf.length * 2)
        buf.copy(bigger, 0, 0, filled)
        buf = bigger
      }
      const { bytesRead } = await fh.read(buf, filled, buf.length - filled, null)
      if (bytesRead === 0) break
      const searchFrom = filled
      filled += bytesRead
      let start = 0
      for (let nl = buf.indexOf(10, searchFrom); nl !== -1 && nl < filled; nl = buf.indexOf(10, start)) {
        if (!reader.pushLine(buf, start, nl)) return undefined
        start = nl + 1
      }
      if (start > 0) {
        buf.copy(buf, 0, start, filled)
        filled -= start
      }
    }
    if (!reader.pushLine(buf, 0, filled)) return undefined
    return reader.finish()
  } finally {
    await fh.close()
  }
}

/**
 * Loads an allowlist file (any supported format). Throws AuthError(allowlist_invalid) for a missing
 * file (unless `autoCreate`), unreadable file, invalid JSON (with line and column) or a bad entry.
 */
export async function loadAllowlistFile(path: string, options: LoadAllowlistOptions = {}): Promise<Allowlist> {
  try {
    const fast = await readLineLayout(path)
    if (fast) return fast
    return Allowlist.fromJSON(await readFile(path, 'utf8'), path)
  } catch (err) {
    if (isMissing(err) && options.autoCreate) {
      const list = new Allowlist(path)
      await withFileLock(path, async () => {
        try {
          await stat(path)
        } catch (e) {
          if (!isMissing(e)) throw e
          await writeFileAtomic(path, list.toJSON())
        }
      })
      return loadAllowlistFile(path)
    }
    throw fileError(path, err)
  }
}

/** Writes the allowlist to `path` atomically, under the file lock. */
export async function saveAllowlistFile(path: string, allowlist: Allowlist, options: LockOptions = {}): Promise<void> {
  await withFileLock(path, () => writeFileAtomic(path, allowlist.toJSON()), options)
}

export interface UpdateAllowlistOptions extends LockOptions {
  /** Run `mutate` but do not write (default false). */
  dryRun?: boolean
  /** Start from an empty list when the file does not exist (default true); else throw. */
  createIfMissing?: boolean
}

/**
 * Locked read-modify-write: takes `${path}.lock`, loads the file (or an empty list if it does not
 * exist), runs `mutate`, writes atomically, releases. Concurrent updaters (other processes) are
 * serialized, so none loses another's change. Returns the list as written.
 */
export async function updateAllowlistFile(
  path: string,
  mutate: (allowlist: Allowlist) => void | Promise<void>,
  options: UpdateAllowlistOptions = {},
): Promise<Allowlist> {
  const createIfMissing = options.createIfMissing ?? true
  if (createIfMissing && !options.dryRun) await mkdir(dirname(path), { recursive: true })
  const run = async (): Promise<Allowlist> => {
    let list: Allowlist
    try {
      list = await loadAllowlistFile(path)
    } catch (err) {
      if (!(err instanceof AuthError && isMissing(err.cause) && createIfMissing)) throw err
      list = new Allowlist(path)
    }
    await mutate(list)
    if (!options.dryRun) await writeFileAtomic(path, list.toJSON())
    return list
  }
  if (options.dryRun) return run()
  return withFileLock(path, run, options)
}

/**
 * Completes a fingerprint-only entry in the file: a compare-and-set under the allowlist lock
 * against the entry as it is in the file now. Only the key is added (when the file's entry is
 * still fingerprint-only); every other field stays as the file has it, so an operator's edit made
 * after this process loaded the list (a lower role, an expiry) is never overwritten. Resolves to
 * the file's entry afterwards — what the handshake must be judged on — or undefined when the
 * file no longer lists the key. When the file cannot be locked or written (a read-only mount),
 * the key is not recorded and the entry as read from the file now is returned; when it cannot be
 * read either, this rejects (the caller refuses the handshake). Meant for {@link AllowlistHolder}.
 */
export async function persistCompletedEntry(path: string, entry: AllowlistEntry): Promise<AllowlistEntry | undefined> {
  const key = entry.publicKeyRaw
  if (!key) return (await loadAllowlistFile(path)).get(entry.fingerprint)
  let current: AllowlistEntry | undefined
  try {
    await withFileLock(path, async () => {
      const list = await loadAllowlistFile(path)
      const before = list.get(entry.fingerprint)
      current = before === undefined ? undefined : list.completeKey(entry.fingerprint, key)
      if (before !== undefined && !entryHasKey(before) && current !== undefined) await writeFileAtomic(path, list.toJSON())
    })
    return current
  } catch {
    // Not lockable or not writable: judge on the file as it is now (a broken file rejects here).
    return (await loadAllowlistFile(path)).get(entry.fingerprint)
  }
}

const REMOVAL_MEMORY_MS = 24 * 3600 * 1000
const MAX_REMEMBERED_REMOVALS = 1_000_000

/**
 * Holds the current allowlist so the handshake can keep one {@link KeyLookup} across reloads.
 */
/**
 * What the holder calls when a lookup completes a fingerprint-only entry: it may record the key at
 * the list's source and resolve to the entry as the source has it now (undefined = no longer
 * listed); the handshake is then judged on that entry ({@link AllowlistHolder.settle}).
 */
export type CompletionHandler = (entry: AllowlistEntry) => void | Promise<AllowlistEntry | undefined>

const UNKNOWN_RESULT: LookupResult = Object.freeze({ status: 'unknown' })

export class AllowlistHolder implements KeyLookup {
  #current: Allowlist
  #onComplete: ((entry: AllowlistEntry) => void) | undefined
  /** Fingerprint → the source's answer for a completion still being settled. */
  readonly #settling = new Map<string, Promise<AllowlistEntry | undefined>>()
  /** Fingerprint → the key that completed it, while settling. */
  readonly #settlingKey = new Map<string, Buffer>()
  readonly #clock: () => number
  readonly #rememberMs: number
  /** Fingerprint → when a reload removed it (insertion order = age; bounded). */
  readonly #removed = new Map<string, number>()
  #lastStamp = -Infinity

  /**
   * @param clock for removal times (the session verifier's clock)
   * @param sessionTtlSeconds the longest session: removals are remembered at least that long (and a day)
   */
  constructor(initial: Allowlist, onComplete?: CompletionHandler, clock: () => number = Date.now, sessionTtlSeconds = 0) {
    this.#current = initial
    this.#onComplete = onComplete === undefined ? undefined : (entry) => this.#completed(entry, onComplete)
    this.#clock = clock
    this.#rememberMs = Math.max(REMOVAL_MEMORY_MS, sessionTtlSeconds * 1000)
    initial.onComplete = this.#onComplete
  }

  /** A lookup completed `entry` in memory: let the source decide, and settle on its answer. */
  #completed(entry: AllowlistEntry, handler: CompletionHandler): void {
    const fp = entry.fingerprint
    const key = entry.publicKeyRaw
    if (this.#settling.has(fp) || key === undefined) return
    let answer: void | Promise<AllowlistEntry | undefined>
    try {
      answer = handler(entry)
    } catch {
      answer = undefined
    }
    if (!(answer instanceof Promise)) return
    const settled = answer.then(
      (current) => {
        // The in-memory list takes the source's entry (its fields, not the ones loaded earlier).
        if (current === undefined) {
          this.#current.remove(fp)
        } else {
          this.#current.put(current)
          this.#current.completeKey(fp, key) // when the source could not record it
        }
        return current
      },
      (): undefined => {
        this.#current.remove(fp) // fail closed until the next reload says otherwise
        return undefined
      },
    )
    this.#settling.set(fp, settled)
    this.#settlingKey.set(fp, key)
    void settled.finally(() => {
      this.#settling.delete(fp)
      this.#settlingKey.delete(fp)
    })
  }

  /**
   * While a completion of `fingerprint` is being settled with the source: the lookup result on the
   * entry as the source has it now (what the handshake must be judged on). Undefined otherwise —
   * the plain lookup stands.
   */
  settle(fingerprint: string, now: number): Promise<LookupResult> | undefined {
    const pending = this.#settling.size === 0 ? undefined : this.#settling.get(fingerprint)
    if (pending === undefined) return undefined
    const key = this.#settlingKey.get(fingerprint)
    return pending.then((current) => (current === undefined ? UNKNOWN_RESULT : this.#current.lookup(fingerprint, now, key)))
  }

  get current(): Allowlist {
    return this.#current
  }

  /**
   * Swaps in a new list (keeps the completion callback) and remembers which keys it removed, so
   * their sessions stay over even if a later edit lists the key again.
   */
  set current(next: Allowlist) {
    const now = this.#clock()
    // Removal times only move forward (a clock stepped back must not date a removal before a
    // session the handshake dated after the previous removal; see server-handshake.ts).
    const stamp = Math.max(now, this.#lastStamp + 1)
    let removedAny = false
    for (const fp of this.#current.removedIn(next)) {
      this.#removed.delete(fp)
      this.#removed.set(fp, stamp)
      removedAny = true
    }
    if (removedAny) this.#lastStamp = stamp
    // Forget removals no live session can predate, and keep the map bounded.
    for (const [fp, at] of this.#removed) {
      if (at > now - this.#rememberMs && this.#removed.size <= MAX_REMEMBERED_REMOVALS) break
      this.#removed.delete(fp)
    }
    next.onComplete = this.#onComplete
    this.#current = next
  }

  removedAt(fingerprint: string): number | undefined {
    return this.#removed.size === 0 ? undefined : this.#removed.get(fingerprint)
  }

  get size(): number {
    return this.#current.size
  }

  lookup(fingerprint: string, now: number, publicKeyRaw?: Uint8Array): LookupResult {
    return this.#current.lookup(fingerprint, now, publicKeyRaw)
  }

  certAuthorities(): readonly CertAuthorityEntry[] {
    return this.#current.certAuthorities()
  }

  getCertAuthority(fingerprint: string): CertAuthorityEntry | undefined {
    return this.#current.getCertAuthority(fingerprint)
  }

  has(fingerprint: string, now: number): boolean {
    return this.#current.has(fingerprint, now)
  }
}

export interface WatchAllowlistOptions {
  onReload?: (allowlist: Allowlist) => void
  /** A failed reload: the last good list stays in place. */
  onError?: (err: AuthError) => void
  /** Stat-poll interval in ms (fallback for fs.watch), default 1000. */
  pollIntervalMs?: number
}

export interface AllowlistWatcher {
  close(): void
  /** Checks the file now and reloads if it changed. */
  check(): Promise<void>
}

/**
 * Watches `path` (../internal/file-watch.ts) and swaps a freshly loaded list into `holder` on
 * every change. A broken or missing file keeps the last good list and is reported through `onError`.
 */
export function watchAllowlistFile(path: string, holder: AllowlistHolder, options: WatchAllowlistOptions = {}): AllowlistWatcher {
  return reloadOnChange(path, {
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    debounceMs: 25,
    load: () => loadAllowlistFile(path),
    apply(next) {
      holder.current = next
      options.onReload?.(next)
    },
    refused: (err) => options.onError?.(err instanceof AuthError ? err : fileError(path, err)),
  })
}
