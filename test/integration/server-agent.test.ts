/**
 * `keys.agent: true` on a server (docs/operations.md, "Keys in ssh-agent"): a real server from its
 * config signs its handshakes through the real ssh-agent (keys loaded with ssh-add) with no private
 * key file; start-up problems name their fix; an agent that refuses or dies fails handshakes closed
 * (audited with the agent's reason) while sessions and /health keep working; a rotation announces
 * and switches keys that live in the agent.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { AuthError } from '../../src/errors.js'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { encodePublicKeyPem, writeOpenSshPrivateKeyFile } from '../../src/keys/key-file.js'
import { generateKeyPair, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import { createAuthFetchFromConfig } from '../../src/mcp/client.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { createWhoamiHandler } from '../../src/server/whoami.js'
import { authenticate } from '../../src/transport/http-client.js'
import { sshKeygenKey, startSshAgent, type RunningAgent } from '../helpers/openssh.js'

const run = promisify(execFile)
const KEYGEN = join(import.meta.dirname, '../../dist/bin/mcp-keygen.js')

interface World {
  dir: string
  sb: Sandbox
  agent: RunningAgent
  /** The server key in OpenSSH form (what ssh-add loads): `keys/server_ssh`. */
  sshKey: string
  events: Array<{ event: string; fields: Readonly<Record<string, unknown>> }>
  start(over?: Record<string, unknown>): Promise<RunningServer>
}

async function world(t: TestContext, env: NodeJS.ProcessEnv = {}): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-server-agent-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const sb = await createSandbox(dir, {
    server: {
      keys: { agent: true, private_key_path: './keys/no-such-private-key.pem', public_key_path: './keys/server_public.pem' },
      audit: { enabled: false },
      auth: { rate_limit: { per_address: 0, per_key: 0 } },
    },
  })
  // The only copy of the private key the server could use is the one ssh-add loads.
  const sshKey = join(dir, 'keys/server_ssh')
  await writeOpenSshPrivateKeyFile(sshKey, sb.serverKey.privateKey)
  await rm(join(dir, 'keys/server_private.pem'))
  const agentDir = join(dir, 'agent')
  await mkdir(agentDir, { mode: 0o700 })
  const agent = await startSshAgent(agentDir, env)
  t.after(() => agent.stop())
  const events: World['events'] = []
  return {
    dir,
    sb,
    agent,
    sshKey,
    events,
    async start() {
      const handlers: { whoami?: ReturnType<typeof createWhoamiHandler> } = {}
      const server = await withAgent(agent, async () =>
        startServerFromConfig(await loadConfig(sb.serverConfigPath, { env: {} }), {
          audit: new AuditLogger({ enabled: false }),
          onEvent: (event, fields) => events.push({ event, fields }),
          allowlistPollMs: 50,
          fallback: (req, res) => {
            if (!handlers.whoami?.(req, res)) res.writeHead(404).end()
          },
        }),
      )
      handlers.whoami = createWhoamiHandler(server.configured.service)
      t.after(() => server.close())
      return server
    },
  }
}

function sshAdd(agent: RunningAgent, ...args: string[]): void {
  execFileSync('ssh-add', ['-q', ...args], { env: agent.env, stdio: 'ignore' })
}

async function withAgent<T>(agent: RunningAgent | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.SSH_AUTH_SOCK
  if (agent === undefined) delete process.env.SSH_AUTH_SOCK
  else process.env.SSH_AUTH_SOCK = agent.socket
  try {
    return await fn()
  } finally {
    if (saved === undefined) delete process.env.SSH_AUTH_SOCK
    else process.env.SSH_AUTH_SOCK = saved
  }
}

/** One handshake by the sandbox's client, pinned to `pin`; the trust is returned to read the pin after. */
async function handshake(w: World, server: RunningServer, pin: string) {
  const trust = createServerTrust({ pinnedFingerprint: pin, keyRotation: { log: () => undefined } })
  const session = await authenticate({ url: server.authUrl, keyPair: w.sb.clientKey, serverTrust: trust, retryAttempts: 0, timeoutMs: 10_000 })
  await (trust.rotation as unknown as { settled(): Promise<void> }).settled()
  return { session, pinned: (trust.rotation as unknown as { pinned(): string }).pinned() }
}

function lastFailure(w: World): Readonly<Record<string, unknown>> {
  const f = w.events.filter((e) => e.event === 'handshake.failure').at(-1)
  assert.ok(f !== undefined, 'a handshake.failure audit event')
  return f.fields
}

test('keys.agent: the server signs through ssh-agent with the key keys.public_key_path names, and no private key file', async (t) => {
  const w = await world(t)
  // Another ed25519 key first in the agent: the server must pick its own, not the first.
  sshKeygenKey(w.dir, 'decoy')
  sshAdd(w.agent, join(w.dir, 'decoy'))
  sshAdd(w.agent, w.sshKey)
  const server = await w.start()
  assert.equal(server.fingerprint, w.sb.serverKey.fingerprint)
  assert.equal(server.configured.keyPair.privateKey, undefined, 'the process holds no private server key')
  const { session } = await handshake(w, server, w.sb.serverKey.fingerprint)
  assert.equal(session.serverFingerprint, w.sb.serverKey.fingerprint)
  assert.equal(session.clientFingerprint, w.sb.clientKey.fingerprint)
  // The config-driven MCP client path against it: a session, and a request checked with it.
  const authFetch = await createAuthFetchFromConfig(w.sb.clientConfigPath, new URL('/whoami', server.authUrl).href, { interactive: false, retryAttempts: 0 })
  const res = await authFetch(new URL('/whoami', server.authUrl).href, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal(res.status, 200)
  assert.equal(((await res.json()) as { client_fingerprint?: string }).client_fingerprint, w.sb.clientKey.fingerprint)
})

test('an agent that refuses or dies fails handshakes closed (audited with its reason); sessions and /health keep working; the agent back is picked up', async (t) => {
  const w = await world(t)
  sshAdd(w.agent, w.sshKey)
  const server = await w.start()
  const pin = w.sb.serverKey.fingerprint
  // An MCP-style client with a session made while the agent answered.
  const authFetch = await createAuthFetchFromConfig(w.sb.clientConfigPath, new URL('/whoami', server.authUrl).href, { interactive: false, retryAttempts: 0 })
  const whoami = (): Promise<Response> => authFetch(new URL('/whoami', server.authUrl).href, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal((await whoami()).status, 200)
  assert.equal(authFetch.handshakes, 1)

  // The key taken out of the agent: the agent refuses to sign.
  sshAdd(w.agent, '-d', w.sshKey)
  await assert.rejects(handshake(w, server, pin), (err: unknown) => {
    assert.ok(err instanceof AuthError, String(err))
    assert.equal(err.code, 'internal_error', err.message)
    assert.doesNotMatch(err.message, /agent|sock/, 'nothing about the agent crosses the wire')
    return true
  })
  let f = lastFailure(w)
  assert.equal(f.step, 'auth_request')
  assert.equal(f.code, 'internal_error')
  assert.match(String(f.reason), new RegExp(`server key ${pin.slice(0, 16)}… could not sign: the ssh-agent refused to sign.*ssh-add -l`, 's'))
  // Everything that needs no new signature still works.
  assert.equal((await whoami()).status, 200)
  assert.equal(authFetch.handshakes, 1, 'the existing session served the call')
  assert.equal((await fetch(new URL('/health', server.authUrl))).status, 200)

  // Loaded again: handshakes work again, no restart.
  sshAdd(w.agent, w.sshKey)
  assert.equal((await handshake(w, server, pin)).session.serverFingerprint, pin)

  // The agent gone: fail closed with the reason, keep serving.
  await w.agent.stop()
  await assert.rejects(handshake(w, server, pin), (err: unknown) => err instanceof AuthError && err.code === 'internal_error')
  f = lastFailure(w)
  assert.match(String(f.reason), /could not sign: cannot reach the ssh-agent at .*agent\.sock.*ssh-agent/s)
  assert.equal((await whoami()).status, 200)
  assert.equal((await fetch(new URL('/health', server.authUrl))).status, 200)
})

test('start-up: no SSH_AUTH_SOCK, no agent at the socket, the key not in the agent: errors that name the fix', async (t) => {
  const w = await world(t)
  const config = await loadConfig(w.sb.serverConfigPath, { env: {} })
  const start = (agent: RunningAgent | undefined): Promise<RunningServer> =>
    withAgent(agent, async () => {
      const s = await startServerFromConfig(config, { audit: new AuditLogger({ enabled: false }) })
      t.after(() => s.close())
      return s
    })
  await assert.rejects(start(undefined), (err: unknown) => {
    assert.ok(err instanceof AuthError && err.code === 'key_file_invalid', String(err))
    assert.match(err.message, /SSH_AUTH_SOCK is not set.*eval "\$\(ssh-agent\)".*ssh-add/s)
    return true
  })
  await assert.rejects(start(w.agent), /server key \(the key of .*server_public\.pem\): the ssh-agent holds no keys \(or is locked\).*ssh-add <private key file>/s)
  sshKeygenKey(w.dir, 'decoy')
  sshAdd(w.agent, join(w.dir, 'decoy'))
  await assert.rejects(start(w.agent), new RegExp(`holds 1 key, none of them this one; it cannot sign with the key ${w.sb.serverKey.fingerprint}.*ssh-add -l`, 's'))
  await w.agent.stop()
  await assert.rejects(start(w.agent), /cannot reach the ssh-agent at .*agent\.sock: no such socket.*ssh-agent/s)
})

test('a rotation with keys in the agent: the .next public key announces a key the agent holds, message 4 proves both, mcp-keygen rotate switch moves the public files', async (t) => {
  const w = await world(t)
  sshAdd(w.agent, w.sshKey)
  const next: Ed25519KeyPair = generateKeyPair()
  await writeOpenSshPrivateKeyFile(join(w.dir, 'keys/next_ssh'), next.privateKey)
  const nextPub = join(w.dir, 'keys/server_public.next.pem')
  const old = w.sb.serverKey.fingerprint
  const server = await w.start()

  // Announced before the agent holds it: refused (logged), the old keys kept; then added and announced again.
  await writeFile(nextPub, encodePublicKeyPem(next.publicKey))
  await until(() => w.events.some((e) => e.event === 'server_key.reload_failed'))
  assert.match(String(w.events.find((e) => e.event === 'server_key.reload_failed')!.fields.reason), /none of them this one.*ssh-add.*keeping the last good keys/s)
  assert.equal((await handshake(w, server, old)).pinned, old, 'no update while the next key is not in the agent')
  sshAdd(w.agent, join(w.dir, 'keys/next_ssh'))
  await writeFile(nextPub, encodePublicKeyPem(next.publicKey)) // touched: the server looks again
  await until(() => w.events.some((e) => e.event === 'server_key.reload' && e.fields.phase === 'announce'))
  const announced = await handshake(w, server, old)
  assert.equal(announced.session.serverFingerprint, old)
  assert.equal(announced.pinned, next.fingerprint, 'the pin moved: both agent keys signed the update')

  // `rotate start` cannot put a key in the agent: it says how to do it by hand.
  const cli = (...args: string[]) => withAgent(w.agent, () => run(process.execPath, [KEYGEN, 'rotate', ...args, '--config', w.sb.serverConfigPath], { env: { ...process.env } }))
  await run(process.execPath, [KEYGEN, 'rotate', 'end', '--config', w.sb.serverConfigPath], { env: { ...process.env, SSH_AUTH_SOCK: w.agent.socket } }).then(
    () => assert.fail('rotate end during the announce phase must fail'),
    (err: { stderr: string }) => assert.match(err.stderr, /no previous key to forget \(phase announce\)/),
  )
  await cli('switch')
  await until(() => w.events.some((e) => e.event === 'server_key.reload' && e.fields.phase === 'switched'))
  assert.equal(server.fingerprint, next.fingerprint)
  const late = await handshake(w, server, old)
  assert.equal(late.session.serverFingerprint, next.fingerprint)
  assert.equal(late.pinned, next.fingerprint, 'a client still pinned to the old key follows after the switch')
  await cli('end')
  await until(() => w.events.filter((e) => e.event === 'server_key.reload' && e.fields.phase === 'none').length > 0)
  await assert.rejects(cli('start'), (err: { stderr: string }) => {
    assert.match(err.stderr, /keys\.agent is on: the new key belongs in the ssh-agent.*ssh-add.*server_public\.next\.pem/s)
    return true
  })
})

async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 20)) // bounded by the test timeout
}
