/**
 * Rewrites the fingerprint pinned for one server (`servers.<name>.fingerprint`) in a client config
 * file, after a verified server-key rotation: the YAML is edited in place (comments and layout
 * kept), written to a temporary file beside it with the same permissions, flushed, and renamed
 * over the original, so a reader sees the old file or the new one, never a mix.
 * @module
 */
import { randomBytes } from 'node:crypto'
import { access, constants, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { loadYaml } from '../internal/load-on-use.js'
import { AuthError } from '../errors.js'

const MAX_CONFIG_SIZE = 1024 * 1024

/**
 * Moves the pin of server `name` in `file` from `from` to `to` (fingerprints, lowercase hex).
 * Throws AuthError('config_invalid') with the reason when the file cannot be read, parsed or
 * written, or pins something other than `from`; the file is then unchanged.
 */
export async function updatePinnedFingerprint(file: string, name: string, from: string, to: string): Promise<void> {
  const fail = (why: string): never => {
    throw new AuthError('config_invalid', `${file}: cannot move the pin of server "${name}" to ${to}: ${why}; the pin stays ${from}`, { path: file })
  }
  let text: string
  let mode: number
  try {
    const st = await stat(file)
    if (st.size > MAX_CONFIG_SIZE) fail('the file is larger than 1 MiB')
    mode = st.mode & 0o777
    text = await readFile(file, 'utf8')
  } catch (err) {
    if (err instanceof AuthError) throw err
    return fail(`it cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
  }
  const doc = loadYaml().parseDocument(text, { uniqueKeys: true })
  if (doc.errors.length > 0) fail(`it is not valid YAML (${(doc.errors[0]!.message.split('\n')[0] ?? '').slice(0, 200)}); fix the file or re-pin by hand`)
  const pinned = doc.getIn(['servers', name, 'fingerprint'])
  if (typeof pinned !== 'string') fail(`it has no servers.${name}.fingerprint`)
  const current = (pinned as string).toLowerCase()
  if (current === to) return
  if (current !== from) fail(`it pins ${current}, not ${from} (edited meanwhile?)`)
  // A file without its owner's write bit is read-only on purpose, even for root (who may write anything).
  let writable = (mode! & 0o200) !== 0
  if (writable) writable = await access(file, constants.W_OK).then(() => true, () => false)
  if (!writable) fail(`the file is not writable; make it writable (chmod u+w ${file}) or re-pin by hand`)
  doc.setIn(['servers', name, 'fingerprint'], to)
  await replaceFile(file, doc.toString(), mode!).catch((err: unknown) => fail(`it could not be written (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`))
}

/** Writes `text` to a new file beside `file` (mode `mode`), flushes it, and renames it over `file`. */
async function replaceFile(file: string, text: string, mode: number): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', mode)
  try {
    await fh.chmod(mode) // the umask may have narrowed it
    await fh.writeFile(text, 'utf8')
    await fh.sync()
  } catch (err) {
    await fh.close()
    await unlink(tmp).catch(() => undefined)
    throw err
  }
  await fh.close()
  try {
    await rename(tmp, file)
  } catch (err) {
    await unlink(tmp).catch(() => undefined)
    throw err
  }
}
