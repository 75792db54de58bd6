// Client certificates and ssh-agent end to end: a real server from its config (Redis nonce store and
// revocation list, own key prefix), CA and client keys and certificates from the real ssh-keygen,
// the real ssh-agent/ssh-add (one agent per test, on its own socket, stopped after), and the
// config-driven client (authenticateWithConfig). The server's audit log is read for the precise
// refusal codes; the client sees only the generic authentication_failed.
import { test, before, after, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { Redis } from 'ioredis'
import { updateAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import type { Config } from '../../src/config/types.js'
import { AuthError } from '../../src/errors.js'
import { writeOpenSshPublicKeyFile } from '../../src/keys/key-file.js'
import { fingerprintOf } from '../../src/keys/key-pair.js'
import { certificateRevocationIds } from '../../src/keys/openssh-cert.js'
import { RedisRevocationList } from '../../src/revocation/redis-revocation-list.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { authenticate, authenticateWithConfig, clientSetupFromConfig } from '../../src/transport/http-client.js'
import { clientKeyOptions } from '../../src/transport/client-key.js'
import { createAuthFetchFromConfig } from '../../src/mcp/client.js'
import { rawKeyOfPub, sshKeygen, sshKeygenKey, startSshAgent, type RunningAgent } from '../helpers/openssh.js'
import { REDIS_URL, deletePrefix, uniquePrefix } from './redis-helpers.js'

let root: string
let n = 0
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'mcp-certs-'))
})
after(async () => {
  await rm(root, { recursive: true, force: true })
})

interface World {
  dir: string
  sb: Sandbox
  server: RunningServer
  caFp: string
  userFp: string
  audit: Record<string, unknown>[]
  auditLogger: AuditLogger
  prefix: string
  /** A client config for the ssh-keygen key `user`, presenting `user-cert.pub` when asked. */
  clientConfig(over?: { private_key_path?: string; certificate_path?: string | null; agent?: boolean }): Promise<Config>
}

async function world(t: TestContext): Promise<World> {
  const dir = join(root, `w${n++}`)
  await mkdir(dir, { recursive: true })
  const prefix = uniquePrefix('certs')
  t.after(() => deletePrefix(prefix))
  const sb = await createSandbox(dir, { server: { auth: { nonce_store: { type: 'redis', url: REDIS_URL, key_prefix: prefix } } } })
  sshKeygenKey(dir, 'ca')
  sshKeygenKey(dir, 'otherca')
  sshKeygenKey(dir, 'user')
  const caRaw = rawKeyOfPub(join(dir, 'ca.pub'))
  await updateAllowlistFile(sb.serverAllowlistPath, (list) => {
    list.addCertAuthority({ publicKeyRaw: caRaw, principals: ['alice', 'deploy'], roleFrom: 'principal', metadata: { org: 'acme' } })
  })
  const stream = new PassThrough()
  const audit: Record<string, unknown>[] = []
  let buffered = ''
  stream.on('data', (d: Buffer) => {
    buffered += d.toString()
    let i: number
    while ((i = buffered.indexOf('\n')) >= 0) {
      audit.push(JSON.parse(buffered.slice(0, i)) as Record<string, unknown>)
      buffered = buffered.slice(i + 1)
    }
  })
  const auditLogger = new AuditLogger({ enabled: true, stream })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const server = await startServerFromConfig(config, { audit: auditLogger, allowlistPollMs: 100 })
  t.after(() => server.close())
  return {
    dir,
    sb,
    server,
    caFp: fingerprintOf(caRaw),
    userFp: fingerprintOf(rawKeyOfPub(join(dir, 'user.pub'))),
    audit,
    auditLogger,
    prefix,
    async clientConfig(over = {}) {
      const keys = { private_key_path: join(dir, 'user'), public_key_path: join(dir, 'user.pub'), certificate_path: join(dir, 'user-cert.pub') as string | null, agent: false, ...over }
      const env: Record<string, string> = { MCP_PRIVATE_KEY_PATH: keys.private_key_path, MCP_PUBLIC_KEY_PATH: keys.public_key_path, MCP_KEY_AGENT: String(keys.agent) }
      if (keys.certificate_path !== null) env.MCP_CERTIFICATE_PATH = keys.certificate_path
      return loadConfig(sb.clientConfigPath, { env })
    },
  }
}

function certify(w: World, args: string[], ca = 'ca'): void {
  sshKeygen(w.dir, ['-q', '-s', ca, ...args, 'user.pub'])
}

async function lastFailure(w: World): Promise<Record<string, unknown>> {
  await w.auditLogger.flush()
  const f = w.audit.filter((e) => e.event === 'handshake.failure').at(-1)
  assert.ok(f !== undefined, 'a handshake.failure audit line')
  return f
}

async function refused(w: World, code: string, serial: string): Promise<void> {
  const config = await w.clientConfig()
  await assert.rejects(authenticateWithConfig(config, w.server.authUrl, { retryAttempts: 0 }), (err: unknown) => {
    assert.ok(err instanceof AuthError)
    assert.equal(err.code, 'authentication_failed', err.message)
    assert.doesNotMatch(err.message, /cert_|serial|expired|principal/)
    return true
  })
  const f = await lastFailure(w)
  assert.equal(f.code, 'unknown_key')
  assert.equal(f.cert_code, code, String(f.reason))
  assert.equal(f.cert_serial, serial)
  assert.equal(f.client_fingerprint, w.userFp)
}

test('a client whose key is only certified (not listed) gets in with the role its principal maps to; the session works per request', async (t) => {
  const w = await world(t)
  certify(w, ['-I', 'alice@laptop', '-n', 'alice', '-V', '-5m:+1h', '-z', '42'])
  const session = await authenticateWithConfig(await w.clientConfig(), w.server.authUrl, { retryAttempts: 0 })
  assert.equal(session.clientFingerprint, w.userFp)
  const info = w.server.configured.service.verifier.verifyToken(session.token)
  assert.equal(info.entry.metadata.role, 'alice')
  assert.equal(info.entry.metadata.org, 'acme')
  assert.deepEqual(info.entry.metadata.certificate, { ca: w.caFp, serial: '42' })
  await w.auditLogger.flush()
  const ok = w.audit.find((e) => e.event === 'handshake.success')
  assert.equal(ok?.role, 'alice')
  assert.equal(ok?.cert_key_id, 'alice@laptop')
  assert.equal(ok?.cert_serial, '42')
  // The session is capped at the certificate's expiry (plus the clock tolerance), not session_ttl alone.
  assert.ok(session.expiresAt <= Date.now() + 3600_000 + 300_000 + 1000)

  // Without the certificate the same key is a stranger.
  const bare = await w.clientConfig({ certificate_path: null })
  await assert.rejects(authenticateWithConfig(bare, w.server.authUrl, { retryAttempts: 0 }), /server refused/)

  // Revoking the serial ends the live session at its next request, and refuses new handshakes.
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  const rl = new RedisRevocationList({ redis, keyPrefix: w.prefix })
  t.after(async () => {
    await rl.close()
    await redis.quit()
  })
  await rl.ready(5000)
  await rl.revoke(certificateRevocationIds(w.caFp, '42', 'alice@laptop').serial, 'test')
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      w.server.configured.service.verifier.verifyToken(session.token)
    } catch (err) {
      assert.ok(err instanceof AuthError && err.code === 'session_revoked', String(err))
      break
    }
    assert.ok(Date.now() < deadline, 'the revocation reaches the server')
    await new Promise((r) => setTimeout(r, 50))
  }
  await refused(w, 'cert_revoked_serial', '42')
})

test('refused certificates: expired, not yet valid, wrong principal, host certificate, other CA, unknown critical option — precise code in the audit log, authentication_failed on the wire', async (t) => {
  const w = await world(t)
  const cases: [string, string[], string, string?][] = [
    ['cert_expired', ['-I', 'old', '-n', 'alice', '-V', '-3h:-1h', '-z', '1'], '1'],
    ['cert_not_yet_valid', ['-I', 'future', '-n', 'alice', '-V', '+1h:+3h', '-z', '2'], '2'],
    ['cert_wrong_principal', ['-I', 'mallory', '-n', 'mallory', '-V', '-5m:+1h', '-z', '3'], '3'],
    ['cert_wrong_type', ['-h', '-I', 'host', '-n', 'alice', '-V', '-5m:+1h', '-z', '4'], '4'],
    ['cert_unknown_authority', ['-I', 'elsewhere', '-n', 'alice', '-V', '-5m:+1h', '-z', '5'], '5', 'otherca'],
    ['cert_critical_option', ['-I', 'forced', '-n', 'alice', '-V', '-5m:+1h', '-z', '6', '-O', 'force-command=/bin/true'], '6'],
  ]
  for (const [code, args, serial, ca] of cases) {
    certify(w, args, ca)
    await refused(w, code, serial)
  }
})

test('keys.agent: the client signs through ssh-agent with no private key file, and presents the certificate', async (t) => {
  const w = await world(t)
  certify(w, ['-I', 'deploy-bot', '-n', 'deploy', '-V', '-5m:+1h', '-z', '7'])
  const agent = await agentFor(t, w)
  execFileSync('ssh-add', ['-q', join(w.dir, 'user')], { env: agent.env, stdio: 'ignore' })
  const config = await w.clientConfig({ agent: true, private_key_path: join(w.dir, 'no-such-private-key') })
  const session = await withAgent(agent, () => authenticateWithConfig(config, w.server.authUrl, { retryAttempts: 0 }))
  assert.equal(session.clientFingerprint, w.userFp)
  assert.equal(w.server.configured.service.verifier.verifyToken(session.token).entry.metadata.role, 'deploy')
  // The MCP client path (createAuthFetchFromConfig, which mcp-pki-proxy uses) signs through the agent too.
  const origin = new URL(w.server.authUrl).origin
  const authFetch = await withAgent(agent, () => createAuthFetchFromConfig(config, `${origin}/mcp`, { interactive: false, retryAttempts: 0 }))
  const res = await withAgent(agent, () => authFetch(`${origin}/health`))
  assert.equal(res.status, 200)
  assert.equal(authFetch.handshakes, 1)
  assert.equal(authFetch.current?.clientFingerprint, w.userFp)
  assert.equal(w.server.configured.service.verifier.verifyToken(authFetch.current!.token).entry.metadata.role, 'deploy')
})

test('keys.agent errors: no SSH_AUTH_SOCK, key not in the agent, agent locked, key removed after start-up, confirmation denied', async (t) => {
  const w = await world(t)
  certify(w, ['-I', 'deploy-bot', '-n', 'deploy', '-V', '-5m:+1h', '-z', '8'])
  const config = await w.clientConfig({ agent: true, private_key_path: join(w.dir, 'no-such-private-key') })
  const saved = process.env.SSH_AUTH_SOCK
  delete process.env.SSH_AUTH_SOCK
  try {
    await assert.rejects(authenticateWithConfig(config, w.server.authUrl, { retryAttempts: 0 }), /SSH_AUTH_SOCK is not set.*ssh-agent/s)
  } finally {
    if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved
  }

  const askpass = join(w.dir, 'askpass-no.sh')
  await writeFile(askpass, '#!/bin/sh\nexit 1\n')
  await chmod(askpass, 0o700)
  const agent = await agentFor(t, w, { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' })
  await withAgent(agent, async () => {
    await assert.rejects(authenticateWithConfig(config, w.server.authUrl, { retryAttempts: 0 }), /holds no keys.*ssh-add/s)
    // Another key in the agent, not the one keys.public_key_path names.
    sshKeygenKey(w.dir, 'other')
    execFileSync('ssh-add', ['-q', join(w.dir, 'other')], { env: agent.env, stdio: 'ignore' })
    await assert.rejects(authenticateWithConfig(config, w.server.authUrl, { retryAttempts: 0 }), (err: unknown) => {
      assert.ok(err instanceof AuthError && err.code === 'key_file_invalid', String(err))
      assert.match(err.message, new RegExp(`${w.userFp.slice(0, 16)}.*ssh-add`, 's'))
      return true
    })

    // Removed from the agent after the client started: the agent refuses to sign.
    execFileSync('ssh-add', ['-q', join(w.dir, 'user')], { env: agent.env, stdio: 'ignore' })
    const setup = await clientSetupFromConfig(config, w.server.authUrl)
    execFileSync('ssh-add', ['-q', '-d', join(w.dir, 'user.pub')], { env: agent.env, stdio: 'ignore' })
    await assert.rejects(
      authenticate({ url: w.server.authUrl, ...clientKeyOptions(setup), serverTrust: setup.serverTrust, audience: setup.audience, retryAttempts: 0 }),
      (err: unknown) => {
        assert.ok(err instanceof AuthError && err.code === 'key_file_invalid', String(err))
        assert.match(err.message, /refused to sign.*ssh-add -l/s)
        return true
      },
    )
    execFileSync('ssh-add', ['-q', '-D'], { env: agent.env, stdio: 'ignore' })

    // Locked (ssh-add -x): the agent lists nothing until unlocked.
    execFileSync('ssh-add', ['-q', join(w.dir, 'user')], { env: agent.env, stdio: 'ignore' })
    const lockPass = join(w.dir, 'askpass-lock.sh')
    await writeFile(lockPass, '#!/bin/sh\necho lockword\n')
    await chmod(lockPass, 0o700)
    const lockEnv = { ...agent.env, SSH_ASKPASS: lockPass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' }
    execFileSync('ssh-add', ['-x'], { env: lockEnv, stdio: 'ignore' })
    await assert.rejects(authenticateWithConfig(config, w.server.authUrl, { retryAttempts: 0 }), (err: unknown) => {
      assert.ok(err instanceof AuthError && err.code === 'key_file_invalid', String(err))
      assert.match(err.message, /ssh-add/)
      return true
    })
    execFileSync('ssh-add', ['-X'], { env: lockEnv, stdio: 'ignore' })

    // Confirmation required (ssh-add -c) and the askpass of the agent says no.
    execFileSync('ssh-add', ['-q', '-D'], { env: agent.env, stdio: 'ignore' })
    assert.equal(w.audit.filter((e) => e.event === 'handshake.success').length, 0, 'no handshake got through')
    execFileSync('ssh-add', ['-q', '-c', join(w.dir, 'user')], { env: agent.env, stdio: 'ignore' })
    await assert.rejects(authenticateWithConfig(config, w.server.authUrl, { retryAttempts: 0 }), (err: unknown) => {
      assert.ok(err instanceof AuthError && err.code === 'key_file_invalid', String(err))
      assert.match(err.message, /refused to sign.*locked.*ssh-add -c/s)
      return true
    })
  })
})

async function agentFor(t: TestContext, w: World, env: NodeJS.ProcessEnv = {}): Promise<RunningAgent> {
  const dir = join(w.dir, `agent${n++}`)
  await mkdir(dir, { mode: 0o700 })
  const agent = await startSshAgent(dir, env)
  t.after(() => agent.stop())
  return agent
}

async function withAgent<T>(agent: RunningAgent, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.SSH_AUTH_SOCK
  process.env.SSH_AUTH_SOCK = agent.socket
  try {
    return await fn()
  } finally {
    if (saved === undefined) delete process.env.SSH_AUTH_SOCK
    else process.env.SSH_AUTH_SOCK = saved
  }
}

test('host certificates: a client whose allowlist trusts the CA accepts the server key certified for the host it connects to, and refuses one for another host', async (t) => {
  const dir = join(root, `h${n++}`)
  await mkdir(dir, { recursive: true })
  const sb = await createSandbox(dir)
  sshKeygenKey(dir, 'hostca')
  await writeOpenSshPublicKeyFile(join(dir, 'server.pub'), sb.serverKey.publicKeyRaw)
  const caRaw = rawKeyOfPub(join(dir, 'hostca.pub'))
  // The client does not list the server key: it trusts the host CA instead.
  await updateAllowlistFile(sb.clientAllowlistPath, (list) => {
    list.remove(sb.serverKey.fingerprint)
    list.addCertAuthority({ publicKeyRaw: caRaw, metadata: { role: 'mcp_server' } })
  })
  const start = async (hostName: string): Promise<RunningServer> => {
    sshKeygen(dir, ['-q', '-s', 'hostca', '-h', '-I', `server-${hostName}`, '-n', hostName, '-V', '-5m:+1h', 'server.pub'])
    const config = await loadConfig(sb.serverConfigPath, { env: { MCP_CERTIFICATE_PATH: join(dir, 'server-cert.pub') } })
    const server = await startServerFromConfig(config, { audit: new AuditLogger({ enabled: false }) })
    t.after(() => server.close())
    return server
  }
  const client = await loadConfig(sb.clientConfigPath, { env: {} })
  const good = await start('127.0.0.1')
  const session = await authenticateWithConfig(client, good.authUrl, { retryAttempts: 0, interactive: false })
  assert.equal(session.serverFingerprint, sb.serverKey.fingerprint)
  assert.equal(session.serverMetadata?.role, 'mcp_server')
  assert.deepEqual((session.serverMetadata?.certificate as { host?: string }).host, '127.0.0.1')
  await good.close()

  const other = await start('mcp.example.com')
  await assert.rejects(authenticateWithConfig(client, other.authUrl, { retryAttempts: 0, interactive: false }), (err: unknown) => {
    assert.ok(err instanceof AuthError && err.code === 'server_key_unknown', String(err))
    assert.match(err.message, /host certificate was refused \(cert_wrong_principal/)
    return true
  })
})
