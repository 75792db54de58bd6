import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createPublicKey, diffieHellman } from 'node:crypto'
import { deriveSessionKeys, ephemeralFromSeed, generateEphemeral, takeEphemeral, x25519PublicFromRaw } from '../../../src/handshake/common.js'
import { snippetArgs, srcModule } from '../../helpers/node-snippet.js'

test('generateEphemeral: the public key is the one X25519 derives from the private key (same as ephemeralFromSeed)', () => {
  for (let i = 0; i < 50; i++) {
    const e = generateEphemeral()
    assert.equal(e.privateKey.asymmetricKeyType, 'x25519')
    assert.equal(e.privateKey.type, 'private')
    assert.equal(e.publicRaw.byteLength, 32)
    const d = Buffer.from(e.privateKey.export({ format: 'jwk' }).d as string, 'base64url')
    assert.deepEqual(ephemeralFromSeed(d).publicRaw, e.publicRaw)
  }
})

test('generateEphemeral: two parties agree on the shared secret and session key; keys are fresh', () => {
  const a = generateEphemeral()
  const b = generateEphemeral()
  assert.notDeepEqual(a.publicRaw, b.publicRaw)
  const s1 = diffieHellman({ privateKey: a.privateKey, publicKey: x25519PublicFromRaw(b.publicRaw) })
  const s2 = diffieHellman({ privateKey: b.privateKey, publicKey: x25519PublicFromRaw(a.publicRaw) })
  assert.deepEqual(s1, s2)
  const salt = Buffer.alloc(32, 7)
  assert.deepEqual(deriveSessionKeys(a.privateKey, b.publicRaw, salt), deriveSessionKeys(b.privateKey, a.publicRaw, salt))
})

test('generateEphemeral under allocation pressure keeps running (Node 20 keygen+JWK export deadlock is avoided)', async () => {
  // In a child: many ephemerals with garbage in between, so GCs land inside the key export. The
  // former generateKeyPairSync + export pair hung this loop in 2 of 3 runs here; a live child finishes.
  const script = `
    const { generateEphemeral } = await import(${srcModule('handshake/common.js')})
    const junk = []
    for (let i = 0; i < 100000; i++) {
      generateEphemeral()
      junk.push({ s: 'x'.repeat(100) + i, a: [i, i + 1] })
      if (junk.length > 3000) junk.length = 0
    }
    process.stdout.write('done')
  `
  const out = await new Promise<{ code: number | null; stdout: string; killed: boolean }>((resolve) => {
    execFile(process.execPath, snippetArgs(script), { timeout: 100_000 }, (err, stdout) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, killed: err?.killed === true })
    })
  })
  assert.equal(out.killed, false, 'the child hung (deadlock in key generation)')
  assert.equal(out.code, 0)
  assert.equal(out.stdout, 'done')
})

test('takeEphemeral: pre-made keys are handed out once each and work for X25519', async () => {
  const seen = new Set<string>()
  for (let i = 0; i < 40; i++) {
    const e = takeEphemeral()
    const pub = e.publicRaw.toString('hex')
    assert.equal(e.publicRaw.byteLength, 32)
    assert.ok(!seen.has(pub), 'an ephemeral key is never handed out twice')
    seen.add(pub)
    // the private key matches the public half
    assert.equal(Buffer.from(createPublicKey(e.privateKey).export({ format: 'jwk' }).x as string, 'base64url').toString('hex'), pub)
    // let the pool refill between some takes
    if (i % 3 === 0) await new Promise((r) => setImmediate(r))
  }
})
