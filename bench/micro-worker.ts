/**
 * In-process benchmarks, run in a fresh child process: the cryptographic floor, our handshake
 * without any network (client + server time, server CPU per handshake and its ratio to the
 * crypto it must do), and the per-request session check with its breakdown.
 * @module
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto'
import { Allowlist } from '../src/allowlist/allowlist.js'
import { createClientHandshake, createServerTrust } from '../src/handshake/client-handshake.js'
import { generateEphemeral, x25519PublicFromRaw } from '../src/handshake/common.js'
import { createServerHandshake } from '../src/handshake/server-handshake.js'
import { generateKeyPair, type Ed25519KeyPair } from '../src/keys/key-pair.js'
import { InMemoryNonceStore } from '../src/nonce/memory-nonce-store.js'
import { hmacPads } from '../src/internal/hmac-sha256.js'
import { bodyDigest, computeProofMac, createRequestProof, decodeSessionTicket, matchRequestProof, parseRequestProof, proofMacMatches, tokenDigest } from '../src/session/session-token.js'
import { createSessionVerifier } from '../src/session/session-verifier.js'
import { cpuMicros, keep, serve, statOf, timeAsync, timeSync, type Stat } from './lib.js'

interface Opts {
  quick: boolean
  runs: number
}

function optsOf(m: Record<string, unknown>): Opts {
  const quick = m.quick === true
  return { quick, runs: typeof m.runs === 'number' ? m.runs : quick ? 3 : 5 }
}

// ---------- floor ----------

function x25519Pair(): { privateKey: KeyObject; publicKey: KeyObject; raw: Buffer } {
  const e = generateEphemeral()
  return { privateKey: e.privateKey, publicKey: x25519PublicFromRaw(e.publicRaw), raw: e.publicRaw }
}

/** A message about the size of the transcripts the handshake signs. */
const MESSAGE = randomBytes(400)

function floor(o: Opts): Record<string, Stat> {
  const n = o.quick ? 300 : 3000
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const sig = sign(null, MESSAGE, privateKey)
  const raw = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url')
  const pem = publicKey.export({ format: 'pem', type: 'spki' }) as string
  const der = publicKey.export({ format: 'der', type: 'spki' })
  const jwk = { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }
  // (keys not made by generateKeyPairSync: exporting those can deadlock Node 20, see common.ts)
  const a = x25519Pair()
  const b = x25519Pair()
  const bRaw = b.raw
  const shared = diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey })
  const salt = randomBytes(32)
  const info = Buffer.from('mcp-pki/2 session-keys')
  const macKey = randomBytes(32)
  const mac64 = randomBytes(64)
  const aesKey = randomBytes(32)
  const plain = randomBytes(72)
  const aad = randomBytes(6)
  const seal = (): Buffer => {
    const iv = randomBytes(12)
    const c = createCipheriv('aes-256-gcm', aesKey, iv)
    c.setAAD(aad)
    const ct = c.update(plain)
    c.final()
    return Buffer.concat([iv, ct, c.getAuthTag()])
  }
  const sealed = seal()
  const open = (): Buffer => {
    const d = createDecipheriv('aes-256-gcm', aesKey, sealed.subarray(0, 12))
    d.setAAD(aad)
    d.setAuthTag(sealed.subarray(sealed.length - 16))
    const pt = d.update(sealed.subarray(12, sealed.length - 16))
    d.final()
    return pt
  }
  return {
    ed25519_sign: timeSync(() => sign(null, MESSAGE, privateKey), n, o.runs),
    ed25519_verify: timeSync(() => verify(null, MESSAGE, publicKey, sig), n, o.runs),
    ed25519_verify_pem_string: timeSync(() => verify(null, MESSAGE, pem, sig), Math.ceil(n / 2), o.runs),
    ed25519_import_pem: timeSync(() => createPublicKey(pem), n, o.runs),
    ed25519_import_der: timeSync(() => createPublicKey({ key: der, format: 'der', type: 'spki' }), n, o.runs),
    ed25519_import_jwk: timeSync(() => createPublicKey({ key: jwk, format: 'jwk' }), n, o.runs),
    x25519_keygen: timeSync(() => generateKeyPairSync('x25519'), n, o.runs),
    x25519_from_random_jwk: timeSync(() => createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: randomBytes(32).toString('base64url'), x: '' }, format: 'jwk' }), n, o.runs),
    x25519_export_jwk: timeSync(() => a.publicKey.export({ format: 'jwk' }).x, n, o.runs),
    x25519_export_der: timeSync(() => a.publicKey.export({ format: 'der', type: 'spki' }).subarray(12), n, o.runs),
    x25519_import_jwk: timeSync(() => x25519PublicFromRaw(bRaw), n, o.runs),
    x25519_shared_secret: timeSync(() => diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey }), n, o.runs),
    generate_ephemeral: timeSync(() => generateEphemeral(), n, o.runs),
    hkdf_sha256: timeSync(() => hkdfSync('sha256', shared, salt, info, 32), n * 3, o.runs),
    hmac_sha256: timeSync(() => createHmac('sha256', macKey).update(mac64).digest(), n * 5, o.runs),
    sha256: timeSync(() => createHash('sha256').update(MESSAGE).digest(), n * 5, o.runs),
    aes_gcm_seal: timeSync(seal, n * 3, o.runs),
    aes_gcm_open: timeSync(open, n * 3, o.runs),
    random_32: timeSync(() => randomBytes(32), n * 5, o.runs),
  }
}

// ---------- in-process handshake ----------

interface Setup {
  server: Ed25519KeyPair
  client: Ed25519KeyPair
  serverAllowlist: Allowlist
  clientAllowlist: Allowlist
}

function setup(): Setup {
  const server = generateKeyPair()
  const client = generateKeyPair()
  const serverAllowlist = new Allowlist()
  serverAllowlist.add({ publicKeyRaw: client.publicKeyRaw, metadata: { role: 'trusted_client' } })
  const clientAllowlist = new Allowlist()
  clientAllowlist.add({ publicKeyRaw: server.publicKeyRaw, metadata: { role: 'mcp_server' } })
  return { server, client, serverAllowlist, clientAllowlist }
}

/** The crypto the server must do per handshake, in µs (measured now, in this process). */
function serverCrypto(iterations: number): { core: number; all: number; parts: Record<string, number> } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const sig = sign(null, MESSAGE, privateKey)
  const peer = x25519Pair()
  const peerRaw = peer.raw
  const own = x25519Pair()
  const salt = randomBytes(32)
  const info = Buffer.from('mcp-pki/2 session-keys')
  const shared = randomBytes(32)
  const key = randomBytes(32)
  const plain = randomBytes(96)
  const one = (fn: () => unknown, k = 1): number => timeSync(fn, iterations * k, 1, 50).median
  const p = {
    sign: one(() => sign(null, MESSAGE, privateKey)),
    verify: one(() => verify(null, MESSAGE, publicKey, sig)),
    x25519_keygen: one(() => generateKeyPairSync('x25519')),
    x25519_shared_secret: one(() => diffieHellman({ privateKey: own.privateKey, publicKey: peer.publicKey })),
    hkdf: one(() => hkdfSync('sha256', shared, salt, info, 64), 2),
    hmac: one(() => createHmac('sha256', key).update(MESSAGE).digest(), 2),
    x25519_import_and_export: one(() => {
      x25519PublicFromRaw(peerRaw)
      return own.publicKey.export({ format: 'jwk' })
    }),
    aes_gcm: one(() => {
      const c = createCipheriv('aes-256-gcm', key, randomBytes(12))
      c.update(plain)
      c.final()
      return c.getAuthTag()
    }, 2),
    sha256: one(() => createHash('sha256').update(MESSAGE).digest(), 4),
  }
  // mcp-pki/2: one signature (message 2) and one verification (message 3); message 4 is a MAC.
  const core = p.sign + p.verify + p.x25519_keygen + p.x25519_shared_secret + p.hkdf + p.hmac
  // everything cryptographic the engine does: + peer key import/export, 2 seals + 1 open, ~6 hashes
  const all = core + p.x25519_import_and_export + 3 * p.aes_gcm + 6 * p.sha256
  return { core, all, parts: p }
}

async function inprocess(o: Opts): Promise<Record<string, unknown>> {
  const n = o.quick ? 200 : 2000
  const s = setup()
  const nonces = new InMemoryNonceStore({ maxEntries: 10_000_000, sweepIntervalMs: 0 })
  const server = createServerHandshake({ keyPair: s.server, allowlist: s.serverAllowlist, nonceStore: nonces })
  const trust = createServerTrust({ allowlist: s.clientAllowlist })

  const perHandshakeUs: number[] = []
  const serverCpuUs: number[] = []
  const serverWallUs: number[] = []
  const cryptoCoreUs: number[] = []
  const cryptoAllUs: number[] = []
  const ratios: number[] = []
  const ratiosAll: number[] = []
  let parts: Record<string, number> = {}
  const one = async (stats?: { cpu: number; wall: number }): Promise<void> => {
    const client = createClientHandshake({ keyPair: s.client, audience: 'http://127.0.0.1:8443', serverTrust: trust })
    const m1 = client.start()
    let c0 = 0
    let w0 = 0
    if (stats) {
      c0 = cpuMicros()
      w0 = performance.now()
    }
    const m2 = server.handleRequest(m1)
    if (stats) {
      stats.cpu += cpuMicros() - c0
      stats.wall += performance.now() - w0
    }
    const m3 = await client.handleChallenge(m2)
    if (stats) {
      c0 = cpuMicros()
      w0 = performance.now()
    }
    const r = await server.handleResponse(m3)
    if (stats) {
      stats.cpu += cpuMicros() - c0
      stats.wall += performance.now() - w0
    }
    keep(client.handleComplete(r.message))
  }
  for (let i = 0; i < Math.min(200, n); i++) await one()
  for (let r = 0; r < o.runs; r++) {
    // 1. end-to-end time per handshake (client + server), nothing else measured
    const t0 = performance.now()
    for (let i = 0; i < n; i++) await one()
    perHandshakeUs.push(((performance.now() - t0) * 1000) / n)
    // 2. server CPU per handshake (process.cpuUsage around the two server calls only)
    const st = { cpu: 0, wall: 0 }
    for (let i = 0; i < n; i++) await one(st)
    serverCpuUs.push(st.cpu / n)
    serverWallUs.push((st.wall * 1000) / n)
    // 3. the crypto it must do, measured right now
    const c = serverCrypto(Math.max(100, Math.floor(n / 2)))
    cryptoCoreUs.push(c.core)
    cryptoAllUs.push(c.all)
    parts = c.parts
    ratios.push(st.cpu / n / c.core)
    ratiosAll.push(st.cpu / n / c.all)
  }
  // overhead of one cpuUsage() call pair, to judge the accounting noise
  const cpuUsageCost = timeSync(() => cpuMicros(), 2000, 3).median
  nonces.close()
  return {
    handshake_us: statOf(perHandshakeUs),
    server_cpu_us: statOf(serverCpuUs),
    server_wall_us: statOf(serverWallUs),
    server_crypto_core_us: statOf(cryptoCoreUs),
    server_crypto_all_us: statOf(cryptoAllUs),
    ratio_cpu_to_core_crypto: statOf(ratios),
    ratio_cpu_to_all_crypto: statOf(ratiosAll),
    crypto_parts_us: parts,
    cpu_usage_call_us: cpuUsageCost,
    handshakes_per_run: n,
  }
}

// ---------- session check ----------

async function session(o: Opts): Promise<Record<string, unknown>> {
  const n = o.quick ? 10_000 : 40_000
  const s = setup()
  const nonces = new InMemoryNonceStore({ maxEntries: 10_000_000, sweepIntervalMs: 0 })
  const server = createServerHandshake({ keyPair: s.server, allowlist: s.serverAllowlist, nonceStore: nonces })
  const client = createClientHandshake({ keyPair: s.client, audience: 'http://127.0.0.1:8443', serverTrust: createServerTrust({ allowlist: s.clientAllowlist }) })
  const m2 = server.handleRequest(client.start())
  const r = await server.handleResponse(await client.handleChallenge(m2))
  const sess = client.handleComplete(r.message)
  const verifier = createSessionVerifier({ ticketKeys: server.ticketKeys, allowlist: s.serverAllowlist, nonceStore: nonces })
  const body = '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
  const authorization = `Bearer ${sess.token}`
  // every verified proof is a fresh header string (as from the network); one set per timed loop
  const perLoop = n * o.runs + Math.min(n, 200)
  const makeProofs = (): string[] => {
    const out = new Array<string>(perLoop)
    for (let i = 0; i < perLoop; i++) out[i] = createRequestProof({ session: sess, method: 'POST', target: '/mcp', body })
    return out
  }
  // client side: the proof header made for every MCP request
  const createProofStat = timeSync(() => createRequestProof({ session: sess, method: 'POST', target: '/mcp', body }), n, o.runs)
  const proofsA = makeProofs()
  // verify (promise, as the HTTP transport awaits it) and verifyNow (synchronous with an in-memory nonce store)
  const verifyStat = await timeAsync((i) => verifier.verify({ authorization, proof: proofsA[i], method: 'POST', target: '/mcp', body }), n, o.runs)
  const proofsB = makeProofs()
  let next = 0 // timeSync passes 0…n-1 in every run: count here so no proof is used twice
  const verifyNowStat = timeSync(() => verifier.verifyNow({ authorization, proof: proofsB[next++], method: 'POST', target: '/mcp', body }), n, o.runs)
  const verifyTokenStat = timeSync(() => verifier.verifyToken(sess.token), n, o.runs)

  // breakdown
  const total = proofsA.length
  keep(next)
  const tokenDecodeUncached = timeSync(() => decodeSessionTicket(server.ticketKeys, sess.token), n, o.runs)
  const cache = new Map([[sess.token, 1]])
  const tokenDecodeCached = timeSync(() => cache.get(sess.token), n * 5, o.runs)
  const parsed = parseRequestProof(proofsA[0]!)!
  const ticket = decodeSessionTicket(server.ticketKeys, sess.token)!
  const digest = bodyDigest(body)
  const parseProof = timeSync((i) => parseRequestProof(proofsA[i % total]!), n, o.runs)
  const matchProof = timeSync((i) => matchRequestProof(proofsA[i % total]!), n, o.runs)
  const bodyHash = timeSync(() => bodyDigest(body), n, o.runs)
  const macKey = Buffer.from(ticket.sessionKey)
  const macInput = randomBytes(150) // about the size of the MAC input of this request
  const hmacCreateHmac = timeSync(() => createHmac('sha256', macKey).update(macInput).digest(), n, o.runs)
  const pads = hmacPads(ticket.sessionKey)
  const macText = parsed.mac.toString('base64url')
  const req = { method: 'POST', target: '/mcp', bodyDigest: digest }
  const tokenHash = tokenDigest(sess.token)
  const hmacCached = timeSync(() => proofMacMatches(pads, tokenHash, parsed.epochText, req, String(parsed.timestamp), String(parsed.sequence), macText), n, o.runs)
  const hmacWithBody = timeSync(() => proofMacMatches(pads, tokenHash, parsed.epochText, { method: 'POST', target: '/mcp', body }, String(parsed.timestamp), String(parsed.sequence), macText), n, o.runs)
  const hmacOld = timeSync(
    () =>
      computeProofMac(ticket.sessionKey, {
        tokenDigest: tokenHash,
        epoch: parsed.epoch,
        method: 'POST',
        target: '/mcp',
        mcpSessionId: '',
        bodyDigest: digest,
        timestamp: parsed.timestamp,
        sequence: parsed.sequence,
      }),
    n,
    o.runs,
  )
  // the replay check of a request: one sequence number in its session's window
  const store = new InMemoryNonceStore({ maxEntries: 1000, sweepIntervalMs: 0 })
  const epoch = store.epoch()
  const exp = Date.now() + 60_000
  let sequence = 0
  const nonceInsert = timeSync(() => store.checkSequence('AAAAAAAAAAAAAAAAAAAAAA', ++sequence, exp, epoch), n, o.runs, 0)
  const allowlistLookup = timeSync(() => s.serverAllowlist.lookup(s.client.fingerprint, Date.now()), n * 5, o.runs)
  store.close()
  nonces.close()
  return {
    verify_us: verifyStat,
    verify_now_us: verifyNowStat,
    verify_token_only_us: verifyTokenStat,
    create_proof_us: createProofStat,
    breakdown_us: {
      token_decode_uncached: tokenDecodeUncached,
      token_decode_cached: tokenDecodeCached,
      parse_proof: parseProof,
      match_proof_header: matchProof,
      body_sha256: bodyHash,
      proof_hmac: hmacCached, // cached pads, as the verifier does it (input build + HMAC + constant-time compare)
      proof_mac_check_with_body_hash: hmacWithBody,
      compute_proof_mac_uncached_key: hmacOld,
      hmac_sha256_createHmac_150B: hmacCreateHmac,
      nonce_insert: nonceInsert,
      allowlist_lookup: allowlistLookup,
    },
    calls_per_run: n,
  }
}

serve({
  floor: (m) => ({ result: floor(optsOf(m)) }),
  inprocess: async (m) => ({ result: await inprocess(optsOf(m)) }),
  session: async (m) => ({ result: await session(optsOf(m)) }),
})
