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
 *
 * With `keys.agent` the files are public key files (`keys.public_key_path` and its `.next` /
 * `.previous` siblings) whose keys the ssh-agent holds (agent-server-key.ts).
 * @module
 */
import { stat } from 'node:fs/promises'
import type { Config } from '../config/types.js'
import { AuthError } from '../errors.js'
import type { ServerKeys } from '../handshake/server-key-rotation.js'
import type { ServerKey } from '../handshake/server-key.js'
import { loadPrivateKeyFile } from '../keys/key-file.js'

export interface ServerKeyFiles {
  current: string
  next: string
  previous: string
}

/** `server.pem` → `server.next.pem`, `server.pub` → `server.next.pub` (other names get `.next` appended). */
export function siblingKeyPath(path: string, tag: 'next' | 'previous'): string {
  const ext = ['.pem', '.pub'].find((e) => path.endsWith(e))
  return ext !== undefined ? `${path.slice(0, -4)}.${tag}${ext}` : `${path}.${tag}`
}

/**
 * The three key files a config names: next/previous default to siblings of `keys.private_key_path`;
 * with `keys.agent`, the public key files (siblings of `keys.public_key_path`).
 */
export function serverKeyFilesOf(config: Config): ServerKeyFiles {
  if (config.keys.agent) {
    const pub = config.keys.public_key_path
    return { current: pub, next: siblingKeyPath(pub, 'next'), previous: siblingKeyPath(pub, 'previous') }
  }
  const current = config.keys.private_key_path
  return {
    current,
    next: config.keys.next_private_key_path ?? siblingKeyPath(current, 'next'),
    previous: config.keys.previous_private_key_path ?? siblingKeyPath(current, 'previous'),
  }
}

/** Loads the key a file names: the private key file itself, or (keys.agent) its key in the agent. */
export type ServerKeyLoader = (path: string) => Promise<ServerKey>

const loadKeyFile: ServerKeyLoader = (path) => loadPrivateKeyFile(path, { noPrompt: true })

async function loadOptional(path: string, load: ServerKeyLoader): Promise<ServerKey | undefined> {
  try {
    return await load(path)
  } catch (err) {
    if (err instanceof AuthError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined
    throw err
  }
}

/** Loads and checks the key set the files describe now (`current` given: the key already loaded). Throws AuthError. */
export async function loadServerKeys(files: ServerKeyFiles, current?: ServerKey, load: ServerKeyLoader = loadKeyFile): Promise<ServerKeys> {
  const cur = current ?? (await load(files.current))
  const [next, previous] = await Promise.all([loadOptional(files.next, load), loadOptional(files.previous, load)])
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
  /** Default: private key files. */
  load?: ServerKeyLoader
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
      const loaded = await loadServerKeys(files, undefined, o.load)
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
