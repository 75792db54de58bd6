/** The server's key files during a rotation (src/server/server-keys.ts): phases, refused states, the watcher. */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { link, mkdtemp, rm, unlink, rename } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writePrivateKeyFile } from '../../../src/keys/key-file.js'
import { generateKeyPair } from '../../../src/keys/key-pair.js'
import { describeServerKeys, loadServerKeys, siblingKeyPath, watchServerKeys, type ServerKeyFiles } from '../../../src/server/server-keys.js'

const dirs: string[] = []
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

async function files(): Promise<ServerKeyFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-server-keys-'))
  dirs.push(dir)
  const current = join(dir, 'server.pem')
  return { current, next: siblingKeyPath(current, 'next'), previous: siblingKeyPath(current, 'previous') }
}

test('sibling paths: .next / .previous before .pem or .pub, else appended', () => {
  assert.equal(siblingKeyPath('/k/server_private.pem', 'next'), '/k/server_private.next.pem')
  assert.equal(siblingKeyPath('/k/id_ed25519', 'previous'), '/k/id_ed25519.previous')
  assert.equal(siblingKeyPath('/k/id_ed25519.pub', 'next'), '/k/id_ed25519.next.pub')
})

test('with keys.agent the rotation files are the public key file and its siblings (the private key path is not used)', async () => {
  const { parseConfig } = await import('../../../src/config/load-config.js')
  const { serverKeyFilesOf } = await import('../../../src/server/server-keys.js')
  const { config } = parseConfig('keys:\n  agent: true\n  private_key_path: /k/unused.pem\n  public_key_path: /k/server.pub\n  next_private_key_path: /k/unused.next.pem\n', { env: {} })
  assert.deepEqual(serverKeyFilesOf(config), { current: '/k/server.pub', next: '/k/server.next.pub', previous: '/k/server.previous.pub' })
})

test('phases from the files present; both next and previous, or one key twice, are refused with the fix', async () => {
  const f = await files()
  const a = generateKeyPair()
  const b = generateKeyPair()
  await writePrivateKeyFile(f.current, a.privateKey)
  assert.deepEqual(describeServerKeys(await loadServerKeys(f)), { phase: 'none', current: a.fingerprint })
  await writePrivateKeyFile(f.next, b.privateKey)
  assert.deepEqual(describeServerKeys(await loadServerKeys(f)), { phase: 'announce', current: a.fingerprint, from: a.fingerprint, to: b.fingerprint })
  await link(f.current, f.previous)
  await assert.rejects(loadServerKeys(f), { code: 'config_invalid', message: /both .*next\.pem and .*previous\.pem exist: finish one rotation/ })
  await rename(f.next, f.current)
  assert.deepEqual(describeServerKeys(await loadServerKeys(f)), { phase: 'switched', current: b.fingerprint, from: a.fingerprint, to: b.fingerprint })
  await unlink(f.previous)
  await link(f.current, f.previous)
  await assert.rejects(loadServerKeys(f), { code: 'config_invalid', message: /holds the same key as/ })
})

test('the watcher keeps the last good keys through a refused state and picks up the next good one', async () => {
  const f = await files()
  const a = generateKeyPair()
  const b = generateKeyPair()
  await writePrivateKeyFile(f.current, a.privateKey)
  const reloads: string[] = []
  const errors: string[] = []
  const w = watchServerKeys(f, await loadServerKeys(f), { pollIntervalMs: 60_000, onReload: (k) => reloads.push(describeServerKeys(k).phase!), onError: (e) => errors.push(e.message) })
  try {
    await w.check()
    await writePrivateKeyFile(f.next, b.privateKey)
    await w.check()
    assert.equal(w.get().rotation?.to.fingerprint, b.fingerprint)
    await link(f.current, f.previous) // half-way through a switch
    await w.check()
    assert.equal(errors.length, 1)
    assert.equal(describeServerKeys(w.get()).phase, 'announce', 'the last good keys are kept')
    await rename(f.next, f.current)
    await w.check()
    assert.equal(w.get().current.fingerprint, b.fingerprint)
    assert.deepEqual(reloads, ['announce', 'switched'])
  } finally {
    w.close()
  }
})
