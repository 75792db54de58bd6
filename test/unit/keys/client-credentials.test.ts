import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { verify } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Allowlist } from '../../../src/allowlist/allowlist.js'
import { checkServerCertificate } from '../../../src/allowlist/cert-authority.js'
import { loadClientCredentials } from '../../../src/keys/client-credentials.js'
import { publicKeyFromRaw } from '../../../src/keys/key-pair.js'
import { SshAgentError } from '../../../src/keys/ssh-agent.js'
import { rawKeyOfPub, sshAdd, sshCertify, sshKeygenKey, startSshAgent, type RunningAgent } from '../../helpers/openssh.js'

let dir: string
let agent: RunningAgent
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-creds-'))
  agent = await startSshAgent(dir)
  sshKeygenKey(dir, 'ca')
  sshKeygenKey(dir, 'client')
  sshKeygenKey(dir, 'other')
  sshCertify(dir, 'ca', 'client', ['-I', 'client', '-n', 'alice', '-V', '-5m:+1h'])
})
after(async () => {
  await agent?.stop()
  await rm(dir, { recursive: true, force: true })
})

const settings = (over: Partial<Parameters<typeof loadClientCredentials>[0]> = {}) => ({
  private_key_path: join(dir, 'client'),
  public_key_path: join(dir, 'client.pub'),
  certificate_path: join(dir, 'client-cert.pub') as string | null,
  agent: false,
  ...over,
})
const signs = async (c: Awaited<ReturnType<typeof loadClientCredentials>>): Promise<boolean> => {
  const data = Buffer.from('transcript')
  return verify(null, data, publicKeyFromRaw(c.signer.publicKey), await c.signer.sign(data))
}

test('key file: signer over the private key, certificate loaded and matched to it', async () => {
  const c = await loadClientCredentials(settings())
  assert.equal(c.source, 'key-file')
  assert.deepEqual(Buffer.from(c.signer.publicKey), rawKeyOfPub(join(dir, 'client.pub')))
  assert.equal(c.certificate?.certificate.keyId, 'client')
  assert.ok(await signs(c))
})

test('agent: the private key file is not read; the key named by public_key_path signs', async () => {
  const c0 = loadClientCredentials(settings({ agent: true, private_key_path: join(dir, 'does-not-exist') }), { agent: { socketPath: agent.socket } })
  await assert.rejects(c0, (err: unknown) => err instanceof SshAgentError && err.code === 'agent_key_not_found')
  assert.equal((await sshAdd(agent, [join(dir, 'other'), join(dir, 'client')])).code, 0)
  const c = await loadClientCredentials(settings({ agent: true, private_key_path: join(dir, 'does-not-exist') }), { agent: { socketPath: agent.socket } })
  assert.equal(c.source, 'ssh-agent')
  assert.deepEqual(Buffer.from(c.signer.publicKey), rawKeyOfPub(join(dir, 'client.pub')))
  assert.ok(await signs(c))
  // No public key file: the agent's first ed25519 key ("other", added first); the certificate is not for it.
  await assert.rejects(
    loadClientCredentials(settings({ agent: true, public_key_path: join(dir, 'none.pub') }), { agent: { socketPath: agent.socket } }),
    { code: 'key_file_invalid', message: /this certificate is for key [0-9a-f]{64}, but the client signs with [0-9a-f]{64} \(ssh-agent\)/ },
  )
})

test('a certificate for another key is refused at load, naming both fingerprints', async () => {
  await assert.rejects(loadClientCredentials(settings({ private_key_path: join(dir, 'other') })), { code: 'key_file_invalid', message: /certificate is for key/ })
})

test('checkServerCertificate: a host certificate for the host connected to (known_hosts @cert-authority)', () => {
  const host = sshCertify(dir, 'ca', 'other', ['-h', '-I', 'web1', '-n', 'web1.example.com', '-V', '-5m:+1h'])
  const list = new Allowlist('client')
  list.addCertAuthority({ publicKeyRaw: rawKeyOfPub(join(dir, 'ca.pub')) })
  const base = { now: Date.now(), toleranceSeconds: 60, subjectPublicKey: rawKeyOfPub(join(dir, 'other.pub')) }
  assert.ok(checkServerCertificate(list, host, { ...base, host: 'web1.example.com' }).ok)
  const wrongHost = checkServerCertificate(list, host, { ...base, host: 'web2.example.com' })
  assert.equal(wrongHost.ok ? 'ok' : wrongHost.code, 'cert_wrong_principal')
  const userCert = sshCertify(dir, 'ca', 'other', ['-I', 'u', '-n', 'web1.example.com', '-V', '-5m:+1h'])
  const asUser = checkServerCertificate(list, userCert, { ...base, host: 'web1.example.com' })
  assert.equal(asUser.ok ? 'ok' : asUser.code, 'cert_wrong_type')
  const scoped = new Allowlist('client')
  scoped.addCertAuthority({ publicKeyRaw: rawKeyOfPub(join(dir, 'ca.pub')), principals: ['db.example.com'] })
  const out = checkServerCertificate(scoped, host, { ...base, host: 'web1.example.com' })
  assert.equal(out.ok ? 'ok' : out.code, 'cert_wrong_principal')
})
