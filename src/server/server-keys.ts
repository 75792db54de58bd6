/**
 * The server's key files during a server-key rotation (docs/operations.md, "Rotating the server
 * key"), read while the server runs:
 *
 * | files present               | message 2 presents | message 4 carries the update |
 * |-----------------------------|--------------------|------------------------------|
 * | current                     | current            | —                            |
 * | current + next              | current            | current → next               |
 * | current + previous          | current            | previous → current           |
 *
 * The files are polled; a change is loaded whole and checked (the current key loads, next and
 * previous are not both there, no key twice) before it is used, so a half-done switch (seen
 * between two renames) or a broken file keeps the last good keys and is reported.
 * @module
 */
import { stat } from 'node:fs/promises'
import type { Config } from '../config/types.js'
import { AuthError } from '../errors.js'
import type { ServerKeys } from '../handshake/server-key-rotation.js'
import { loadPrivateKeyFile } from '../keys/key-file.js'
import type { Ed25519KeyPair } from '../keys/key-pair.js'

export interface ServerKeyFiles {
  current: string
  next: string
  previous: string
}

/** `server.pem` → `server.next.pem` (a name without `.pem` gets `.next` appended). */
export function siblingKeyPath(path: string, tag: 'next' | 'previous'): string {
  return path.endsWith('.pem') ? `${path.slice(0, -4)}.${tag}.pem` : `${path}.${tag}`
}

/** The three key files a config names (next/previous default to siblings of `keys.private_key_path`). */
export function serverKeyFilesOf(config: Config): ServerKeyFiles {
  const current = config.keys.private_key_path
  return {
    current,
    next: config.keys.next_private_key_path ?? siblingKeyPath(current, 'next'),
    previous: config.keys.previous_private_key_path ?? siblingKeyPath(current, 'previous'),
  }
}

async function loadOptional(path: string): Promise<Ed25519KeyPair | undefined> {
  try {
    return await loadPrivateKeyFile(path, { noPrompt: true })
  } catch (err) {
    if (err instanceof AuthError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined
    throw err
  }
}

/** Loads and checks the key set the files describe now (`current` given: the key already loaded). Throws AuthError. */
export async function loadServerKeys(files: ServerKeyFiles, current?: Ed25519KeyPair): Promise<ServerKeys> {
  const cur = current ?? (await loadPrivateKeyFile(files.current, { noPrompt: true }))
  const [next, previous] = await Promise.all([loadOptional(files.next), loadOptional(files.previous)])
  if (next !== undefined && previous !== undefined) {
    throw new AuthError('config_invalid', `both ${files.next} and ${files.previous} exist: finish one rotation (mcp-keygen rotate end) before starting the next`)
  }
  const other = next ?? previous
  if (other === undefined) return { current: cur }
  if (other.fingerprint === cur.fingerprint) {
    throw new AuthError('config_invalid', `${next !== undefined ? files.next : files.previous} holds the same key as ${files.current}; a rotation needs a different key`)
  }
  return { current: cur, rotation: next !== undefined ? { from: cur, to: next } : { from: other, to: cur } }
}

/** A short description of a key set for logs: the phase and the fingerprints. */
export function describeServerKeys(keys: ServerKeys): Record<string, string> {
  const r = keys.rotation
  if (r === undefined) return { phase: 'none', current: keys.current.fingerprint }
  return { phase: r.from === keys.current ? 'announce' : 'switched', current: keys.current.fingerprint, from: r.from.fingerprint, to: r.to.fingerprint }
}

export interface ServerKeyWatcher {
  /** The keys to use now (pass as `serverKeys`). */
  readonly get: () => ServerKeys
  /** Checks the files now and reloads if they changed. */
  check(): Promise<void>
  close(): void
}

export interface WatchServerKeysOptions {
  pollIntervalMs?: number
  onReload?: (keys: ServerKeys) => void
  onError?: (err: Error) => void
}

async function stamp(path: string): Promise<string> {
  try {
    const s = await stat(path)
    return `${s.ino}:${s.size}:${s.mtimeMs}`
  } catch {
    return '-'
  }
}

export function watchServerKeys(files: ServerKeyFiles, initial: ServerKeys, o: WatchServerKeysOptions = {}): ServerKeyWatcher {
  let keys = initial
  let last: string | undefined
  let running: Promise<void> | undefined
  const stamps = async (): Promise<string> => (await Promise.all([files.current, files.next, files.previous].map(stamp))).join('|')
  const run = async (): Promise<void> => {
    const now = await stamps()
    if (now === last) return
    try {
      const loaded = await loadServerKeys(files)
      if ((await stamps()) !== now) return // changed while loading: the next check takes it
      last = now
      const changed = describeKey(loaded) !== describeKey(keys)
      keys = loaded
      if (changed) o.onReload?.(keys)
    } catch (err) {
      last = now // reported once per state of the files
      o.onError?.(err as Error)
    }
  }
  const check = (): Promise<void> => (running ??= run().finally(() => (running = undefined)))
  const timer = setInterval(() => void check(), o.pollIntervalMs ?? 500)
  timer.unref()
  return { get: () => keys, check, close: () => clearInterval(timer) }
}

function describeKey(k: ServerKeys): string {
  return JSON.stringify(describeServerKeys(k))
}
