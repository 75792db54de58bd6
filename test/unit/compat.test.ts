import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ACLManager, AuthenticationEngine, KeyManager } from '../../src/compat.js'
import { defaultConfig } from '../../src/config/load-config.js'
import { Allowlist } from '../../src/allowlist/allowlist.js'
import { rawPublicKey } from '../../src/keys/key-pair.js'

test('KeyManager, ACLManager and AuthenticationEngine work as the product description shows', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-compat-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const km = new KeyManager()
  const [priv, pub] = km.generateKeyPair()
  await km.savePrivateKey(priv, join(dir, 'private.pem'))
  await km.savePublicKey(pub, join(dir, 'public.pem'))
  assert.equal((await stat(join(dir, 'private.pem'))).mode & 0o777, 0o600)
  const loaded = await km.loadPrivateKey(join(dir, 'private.pem'))
  assert.equal(km.getFingerprint(loaded), km.getFingerprint(await km.loadPublicKey(join(dir, 'public.pem'))))
  const sig = km.signData(priv, Buffer.from('message'))
  assert.equal(km.verifySignature(pub, Buffer.from('message'), sig), true)
  assert.equal(km.verifySignature(pub, Buffer.from('messagE'), sig), false)

  const acl = new ACLManager(join(dir, 'allowlist.json'))
  const [cpriv, cpub] = km.generateKeyPair()
  await acl.addKey(cpub, { role: 'client', org: 'example' })
  assert.deepEqual(await acl.isKeyAllowed(cpub), [true, { role: 'client', org: 'example' }])
  assert.equal((await acl.listKeys()).length, 1)

  const config = defaultConfig()
  // No socket here: the engine needs to know its audience (without one it refuses every handshake).
  config.auth.audience = 'http://127.0.0.1:8443'
  const serverList = await acl.load()
  const clientList = new Allowlist()
  clientList.add({ publicKeyRaw: rawPublicKey(pub), metadata: { role: 'mcp_server' } })
  const server = new AuthenticationEngine(config, { keyPair: priv, allowlist: serverList })
  const client = new AuthenticationEngine(config, { keyPair: cpriv, allowlist: clientList, audience: 'http://127.0.0.1:8443' })
  const challenge = server.processAuthRequest(client.createAuthRequest())
  const result = await server.processAuthResponse(await client.processChallenge(challenge))
  const session = client.verifyAuthComplete(result.message)
  assert.equal(session.serverFingerprint, km.getFingerprint(pub))
  assert.equal(result.clientFingerprint, km.getFingerprint(cpub))

  assert.equal(await acl.removeKey(cpub), true)
  assert.deepEqual(await acl.isKeyAllowed(cpub), [false, undefined])
})
