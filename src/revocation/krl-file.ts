/**
 * `auth.revoked_keys_file`: an OpenSSH KRL (`ssh-keygen -k`) loaded at start and again whenever it
 * changes, as sshd's RevokedKeys. At start a file that is missing, unreadable or not a KRL this
 * reader takes whole is an error (the server does not start: fail closed). Later, such a file keeps
 * the last good KRL in force and is reported through `onError` (the server audits it at ERROR).
 * @module
 */
import { AuthError } from '../errors.js'
import { fileSignature, reloadOnChange } from '../internal/file-watch.js'
import { loadOpenSshKrlFile } from '../keys/openssh-krl.js'
import { KrlRevocation } from './krl-revocation.js'

export interface KrlFileWatcher {
  readonly revocation: KrlRevocation
  /** Checks the file now and reloads if it changed. */
  check(): Promise<void>
  close(): void
}

export interface WatchKrlFileOptions {
  pollIntervalMs?: number
  onReload?: (revocation: KrlRevocation) => void
  onError?: (err: AuthError) => void
}

/** Loads the KRL at `path` (throws AuthError key_file_invalid naming the file and the fix) and keeps it current. */
export async function watchKrlFile(path: string, options: WatchKrlFileOptions = {}): Promise<KrlFileWatcher> {
  const initialSignature = await fileSignature(path)
  const revocation = new KrlRevocation(await loadKrl(path))
  const watcher = reloadOnChange(path, {
    initialSignature,
    pollIntervalMs: options.pollIntervalMs ?? 500,
    debounceMs: 20,
    load: () => loadKrl(path),
    apply(krl) {
      revocation.replace(krl)
      options.onReload?.(revocation)
    },
    refused: (err) => options.onError?.(err instanceof AuthError ? err : new AuthError('key_file_invalid', `${path}: ${String(err)}`, { cause: err })),
  })
  return { revocation, check: watcher.check, close: watcher.close }
}

async function loadKrl(path: string): ReturnType<typeof loadOpenSshKrlFile> {
  try {
    return await loadOpenSshKrlFile(path)
  } catch (err) {
    if (!(err instanceof AuthError)) throw err
    throw new AuthError('key_file_invalid', `auth.revoked_keys_file: ${err.message}; write it with ssh-keygen -k -f ${path} … (an empty one: ssh-keygen -k -f ${path} /dev/null)`, { cause: err, path })
  }
}
