/**
 * `auth.revoked_keys_file` (an OpenSSH KRL from the real ssh-keygen -k) on a server from its config:
 * a missing or malformed file stops the start; a reload that revokes a listed key or a certificate
 * (by serial range) refuses its next handshake (audited with the reason) and ends its live session;
 * a broken new file keeps the last good one and is audited at ERROR.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { updateAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { AuthError } from '../../src/errors.js'
import { writeOpenSshPublicKeyFile } from '../../src/keys/key-file.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { authenticateWithConfig } from '../../src/transport/http-client.js'
import { rawKeyOfPub, sshKeygen, sshKeygenKey } from '../helpers/openssh.js'

interface World {
  dir: string
  sb: Sandbox
  krl: string
  events: Array<{ event: string; fields: Readonly<Record<string, unknown>>; level: string }>
  start(): Promise<RunningServer>
}

async function world(t: TestContext): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-krl-file-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const sb = await createSandbox(dir, { server: { audit: { enabled: false }, auth: { revoked_keys_file: './revoked.krl', rate_limit: { per_address: 0, per_key: 0 } } } })
  await writeOpenSshPublicKeyFile(join(dir, 'client.pub'), sb.clientKey.publicKeyRaw)
  const events: World['events'] = []
  return {
    dir,
    sb,
    krl: join(dir, 'revoked.krl'),
    events,
    async start() {
      const server = await startServerFromConfig(await loadConfig(sb.serverConfigPath, { env: {} }), {
        audit: new AuditLogger({ enabled: false }),
        onEvent: (event, fields, level) => events.push({ event, fields, level }),
        allowlistPollMs: 50,
      })
      t.after(() => server.close())
      return server
    },
  }
}

/** Writes the KRL with ssh-keygen -k beside it, then renames it in place (as an operator's script would). */
function writeKrl(w: World, args: string[]): Promise<void> {
  sshKeygen(w.dir, ['-q', '-k', '-f', 'revoked.krl.new', ...args])
  return rename(join(w.dir, 'revoked.krl.new'), w.krl)
}

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 20)) // bounded by the test timeout
}

const reloads = (w: World, event: string): number => w.events.filter((e) => e.event === event).length

test('start-up: a missing or malformed revoked keys file stops the server with the fix', async (t) => {
  const w = await world(t)
  await assert.rejects(w.start(), (err: unknown) => {
    assert.ok(err instanceof AuthError, String(err))
    assert.match(err.message, /auth\.revoked_keys_file: .*revoked\.krl: no such file; write it with ssh-keygen -k -f .*\/dev\/null/)
    return true
  })
  await writeFile(w.krl, 'not a KRL\n')
  await assert.rejects(w.start(), /auth\.revoked_keys_file: .*not an OpenSSH KRL/)
})

test('a reload that revokes a listed key: its next handshake is refused (audited), its live session ends; a broken new file keeps the last good one', async (t) => {
  const w = await world(t)
  await writeKrl(w, ['/dev/null'])
  const server = await w.start()
  const config = await loadConfig(w.sb.clientConfigPath, { env: {} })
  const session = await authenticateWithConfig(config, server.authUrl, { retryAttempts: 0 })
  const verifier = server.configured.service.verifier
  assert.equal(verifier.verifyToken(session.token).clientFingerprint, w.sb.clientKey.fingerprint)

  await writeKrl(w, ['client.pub'])
  await until(() => reloads(w, 'krl.reload') >= 1)
  assert.throws(() => verifier.verifyToken(session.token), (err: unknown) => err instanceof AuthError && err.code === 'session_revoked')
  await assert.rejects(authenticateWithConfig(config, server.authUrl, { retryAttempts: 0 }), (err: unknown) => err instanceof AuthError && err.code === 'authentication_failed')
  const failure = w.events.filter((e) => e.event === 'handshake.failure').at(-1)!
  assert.match(String(failure.fields.reason), new RegExp(`client key ${w.sb.clientKey.fingerprint.slice(0, 16)}… is revoked`))

  // Broken: refused loudly, the last good KRL stays in force.
  await writeFile(join(w.dir, 'broken'), Buffer.from('SSHKRL\n\0garbage'))
  await rename(join(w.dir, 'broken'), w.krl)
  await until(() => reloads(w, 'krl.reload_failed') >= 1)
  const failed = w.events.find((e) => e.event === 'krl.reload_failed')!
  assert.equal(failed.level, 'ERROR')
  assert.match(String(failed.fields.reason), /keeping the last good revoked keys file/)
  await assert.rejects(authenticateWithConfig(config, server.authUrl, { retryAttempts: 0 }), (err: unknown) => err instanceof AuthError && err.code === 'authentication_failed')

  // Lifted: the key gets in again.
  await writeKrl(w, ['/dev/null'])
  await until(() => reloads(w, 'krl.reload') >= 2)
  assert.equal((await authenticateWithConfig(config, server.authUrl, { retryAttempts: 0 })).clientFingerprint, w.sb.clientKey.fingerprint)
})

test('certificates: a KRL serial range under the CA ends a certified session and refuses the certificate (cert_revoked_serial); another serial still gets in', async (t) => {
  const w = await world(t)
  const certs = join(w.dir, 'certs')
  await mkdir(certs)
  sshKeygenKey(certs, 'ca')
  sshKeygenKey(certs, 'user')
  sshKeygenKey(certs, 'other')
  sshKeygen(certs, ['-q', '-s', 'ca', '-I', 'alice', '-n', 'alice', '-V', '-5m:+1h', '-z', '150', 'user.pub'])
  sshKeygen(certs, ['-q', '-s', 'ca', '-I', 'bob', '-n', 'alice', '-V', '-5m:+1h', '-z', '300', 'other.pub'])
  await updateAllowlistFile(w.sb.serverAllowlistPath, (list) => void list.addCertAuthority({ publicKeyRaw: rawKeyOfPub(join(certs, 'ca.pub')), principals: ['alice'], metadata: { role: 'user' } }))
  await writeKrl(w, ['/dev/null'])
  const server = await w.start()
  const as = (name: string) => loadConfig(w.sb.clientConfigPath, { env: { MCP_PRIVATE_KEY_PATH: join(certs, name), MCP_PUBLIC_KEY_PATH: join(certs, `${name}.pub`), MCP_CERTIFICATE_PATH: join(certs, `${name}-cert.pub`) } })
  const session = await authenticateWithConfig(await as('user'), server.authUrl, { retryAttempts: 0 })
  const verifier = server.configured.service.verifier
  verifier.verifyToken(session.token)

  await writeFile(join(w.dir, 'spec'), 'serial: 100-199\n')
  await writeKrl(w, ['-s', join(certs, 'ca.pub'), 'spec'])
  await until(() => reloads(w, 'krl.reload') >= 1)
  assert.throws(() => verifier.verifyToken(session.token), (err: unknown) => err instanceof AuthError && err.code === 'session_revoked' && /revoked \(serial, revoked keys file\)/.test(err.message))
  await assert.rejects(authenticateWithConfig(await as('user'), server.authUrl, { retryAttempts: 0 }), (err: unknown) => err instanceof AuthError && err.code === 'authentication_failed')
  const failure = w.events.filter((e) => e.event === 'handshake.failure').at(-1)!
  assert.equal(failure.fields.cert_code, 'cert_revoked_serial')
  assert.equal(failure.fields.cert_serial, '150')
  assert.ok(await authenticateWithConfig(await as('other'), server.authUrl, { retryAttempts: 0 }))
})
