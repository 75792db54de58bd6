/**
 * bench/handshake-floor.ts, the network benchmark's `floor: protocol crypto + 2 bare round trips`:
 * its handshakes complete, and its wire bytes are mcp-pki/2's — its client authenticates to the
 * project's server and the project's client to its server (so the transcripts it signs, verifies
 * and MACs are the protocol's own). Asserts no speed.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { makeFloorClient, startHandshakeFloor } from '../../bench/handshake-floor.js'
import { Allowlist } from '../../src/allowlist/allowlist.js'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { generateKeyPair, privateKeySeed } from '../../src/keys/key-pair.js'
import { InMemoryNonceStore } from '../../src/nonce/memory-nonce-store.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { authenticate } from '../../src/transport/http-client.js'
import { createAuthHttpServer } from '../../src/transport/http-server.js'

const server = generateKeyPair()
const client = generateKeyPair()
const seedText = (k: typeof server): string => privateKeySeed(k.privateKey).toString('base64url')
const floorClient = (port: number, serverPublicKey = server.publicKeyRaw.toString('base64url')): ReturnType<typeof makeFloorClient> =>
  makeFloorClient({ port, clientSeed: seedText(client), serverPublicKey, concurrency: 2 })

test('floor client and floor server complete handshakes, one at a time and two at once', async () => {
  let handshakes = 0
  const s = await startHandshakeFloor({ serverSeed: privateKeySeed(server.privateKey), onHandshake: () => handshakes++ })
  const c = floorClient(s.port)
  try {
    await c.run()
    await c.run()
    await Promise.all([c.run(), c.run()])
    assert.equal(handshakes, 4)
  } finally {
    c.close()
    await s.close()
  }
})

test('the floor client refuses a server whose key is not the pinned one', async () => {
  const s = await startHandshakeFloor({ serverSeed: privateKeySeed(server.privateKey), onHandshake: () => undefined })
  const c = floorClient(s.port, generateKeyPair().publicKeyRaw.toString('base64url'))
  try {
    await assert.rejects(c.run(), /not the pinned one/)
  } finally {
    c.close()
    await s.close()
  }
})

test("the floor client authenticates to the project's HTTP server (same transcripts, signatures and finished MAC)", async () => {
  const allowlist = new Allowlist()
  allowlist.add({ publicKeyRaw: client.publicKeyRaw, metadata: { role: 'trusted_client' } })
  const service = createAuthService({ keyPair: server, allowlist, nonceStore: new InMemoryNonceStore({ maxEntries: 1000 }) })
  const http = createAuthHttpServer({ service })
  const { port } = await http.listen()
  const c = floorClient(port)
  try {
    await c.run()
    await c.run()
  } finally {
    c.close()
    await http.close()
  }
})

test("the project's client authenticates to the floor server", async () => {
  const s = await startHandshakeFloor({ serverSeed: privateKeySeed(server.privateKey), onHandshake: () => undefined })
  try {
    const session = await authenticate({
      url: `http://127.0.0.1:${s.port}/auth`,
      keyPair: client,
      serverTrust: createServerTrust({ pinnedFingerprint: server.fingerprint }),
      retryAttempts: 0,
      timeoutMs: 10_000,
    })
    assert.equal(session.clientFingerprint, client.fingerprint)
    assert.equal(session.serverFingerprint, server.fingerprint)
  } finally {
    await s.close()
  }
})
