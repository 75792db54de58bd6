// `mcp-config-validate --check-keys` with keys.certificate_path and keys.agent: real ssh-keygen
// certificates and a real ssh-agent.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { sshAdd, sshKeygen, sshKeygenKey, startSshAgent, type RunningAgent } from '../helpers/openssh.js'

const BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-config-validate.js')
let dir: string
let agent: RunningAgent

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-validate-ks-'))
  agent = await startSshAgent(dir)
  sshKeygenKey(dir, 'ca')
  sshKeygenKey(dir, 'client')
  sshKeygenKey(dir, 'other')
  sshKeygen(dir, ['-q', '-s', 'ca', '-I', 'client-id', '-n', 'alice', '-V', '-5m:+1h', '-z', '9', 'client.pub'])
  sshKeygen(dir, ['-q', '-s', 'ca', '-I', 'old', '-n', 'alice', '-V', '20200101:20200102', 'other.pub'])
})
after(async () => {
  await agent?.stop()
  await rm(dir, { recursive: true, force: true })
})

async function validate(name: string, keys: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const file = join(dir, `${name}.yml`)
  await writeFile(file, `keys:\n${Object.entries(keys).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join('\n')}\n`)
  const clean: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...env }
  const r = spawnSync(process.execPath, [BIN, '--check-keys', '--config', file], { cwd: dir, env: clean, encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('a certificate for the configured key is reported with its key id, serial and principals', async () => {
  const r = await validate('good', { private_key_path: 'client', public_key_path: 'client.pub', certificate_path: 'client-cert.pub' })
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /certificate: key id "client-id", serial 9, principals alice, CA [0-9a-f]{16}…/)
})

test('a certificate for another key, and an expired one, are errors that say so', async () => {
  const wrong = await validate('wrong', { private_key_path: 'client', public_key_path: 'client.pub', certificate_path: 'other-cert.pub' })
  assert.equal(wrong.status, 1)
  assert.match(wrong.stdout + wrong.stderr, /is a certificate for key [0-9a-f]{16}…, not for the configured key/)
  assert.match(wrong.stdout + wrong.stderr, /has expired \(renew it/)
})

test('keys.agent: the private key file need not exist; the agent must hold the key', async () => {
  const keys = { private_key_path: 'no-such-file', public_key_path: 'client.pub', certificate_path: 'client-cert.pub', agent: true }
  const missing = await validate('agent1', keys, { SSH_AUTH_SOCK: agent.socket })
  assert.equal(missing.status, 1)
  assert.match(missing.stdout + missing.stderr, /keys\.agent: the ssh-agent holds no keys \(or is locked\).*ssh-add/)
  assert.equal((await sshAdd(agent, [join(dir, 'client')])).code, 0)
  const ok = await validate('agent2', keys, { SSH_AUTH_SOCK: agent.socket })
  assert.equal(ok.status, 0, ok.stdout + ok.stderr)
  assert.match(ok.stdout, /ssh-agent at .* holds key [0-9a-f]{16}…/)
  const noSock = await validate('agent3', keys)
  assert.equal(noSock.status, 1)
  assert.match(noSock.stdout + noSock.stderr, /SSH_AUTH_SOCK is not set/)
})
