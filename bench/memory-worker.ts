/**
 * Memory and scale, one size per fresh child process (run with --expose-gc):
 *   node --expose-gc --import tsx bench/memory-worker.ts allowlist <file> <probe-file>
 *   node --expose-gc --import tsx bench/memory-worker.ts nonce <entries>
 * Prints one JSON line on stdout.
 *
 * The allowlist files are generated once by {@link ensureAllowlistFile} (run from the
 * orchestrator) and cached in the OS temp dir: raw random 32-byte strings as public keys (the
 * allowlist imports keys lazily, so they are never decoded unless looked up) with correct
 * fingerprints, plus a few hundred real ed25519 keys at known positions used as probes.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadAllowlistFile } from '../src/allowlist/allowlist-file.js'
import { Allowlist } from '../src/allowlist/allowlist.js'
import { createClientHandshake, createServerTrust } from '../src/handshake/client-handshake.js'
import { createServerHandshake } from '../src/handshake/server-handshake.js'
import { generateKeyPair, keyPairFromPrivateKey, privateKeyFromSeed, privateKeySeed } from '../src/keys/key-pair.js'
import { InMemoryNonceStore } from '../src/nonce/memory-nonce-store.js'
import { median } from './lib.js'

export const CACHE_DIR = join(tmpdir(), 'mcp-pki-bench-cache')
const PROBES = 200

/** Path of the cached allowlist file with `size` entries (and its probe file), generated if missing. */
export async function ensureAllowlistFile(size: number): Promise<{ file: string; probes: string; generatedMs: number }> {
  mkdirSync(CACHE_DIR, { recursive: true })
  const file = join(CACHE_DIR, `allowlist-${size}.json`)
  const probes = join(CACHE_DIR, `allowlist-${size}.probes.json`)
  if (existsSync(file) && existsSync(probes)) return { file, probes, generatedMs: 0 }
  const t0 = performance.now()
  // probe keys: real ed25519 key pairs (seeds kept so the probe child can run handshakes)
  const probeSeeds: string[] = []
  const probeRaw: Buffer[] = []
  for (let i = 0; i < Math.min(PROBES, size); i++) {
    const kp = generateKeyPair()
    probeSeeds.push(privateKeySeed(kp.privateKey).toString('base64url'))
    probeRaw.push(kp.publicKeyRaw)
  }
  const stride = Math.max(1, Math.floor(size / probeRaw.length))
  const tmp = `${file}.${process.pid}.tmp`
  const out = createWriteStream(tmp)
  const write = (s: string): Promise<void> | undefined => (out.write(s) ? undefined : new Promise((r) => out.once('drain', () => r())))
  await write(`{\n  "version": 1,\n  "updated_at": "${new Date().toISOString()}",\n  "keys": {\n`)
  const addedAt = '2026-01-01T00:00:00.000Z'
  let chunk: string[] = []
  let p = 0
  for (let i = 0; i < size; i++) {
    const raw = i % stride === 0 && p < probeRaw.length ? probeRaw[p++]! : randomBytes(32)
    const fp = createHash('sha256').update(raw).digest('hex')
    const rec = `{"fingerprint":"${fp}","public_key":"${raw.toString('base64url')}","description":"bench key ${i}","added_at":"${addedAt}","added_by":"bench@localhost","metadata":{"role":"trusted_client"}}`
    chunk.push(`    "${fp}": ${rec}${i === size - 1 ? '' : ','}\n`)
    if (chunk.length >= 5000) {
      await write(chunk.join(''))
      chunk = []
    }
  }
  chunk.push('  }\n}\n')
  await write(chunk.join(''))
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())))
  renameSync(tmp, file)
  writeFileSync(probes, JSON.stringify(probeSeeds))
  return { file, probes, generatedMs: performance.now() - t0 }
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc
  if (g === undefined) throw new Error('run with --expose-gc')
  g()
  g()
}

function mem(): { rss: number; heapUsed: number; external: number; arrayBuffers: number } {
  gc()
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers }
}

async function allowlistProbe(file: string, probesFile: string): Promise<Record<string, unknown>> {
  const seeds = (JSON.parse(readFileSync(probesFile, 'utf8')) as string[]).map((s) => Buffer.from(s, 'base64url'))
  const probes = seeds.map((s) => keyPairFromPrivateKey(privateKeyFromSeed(s)))
  const server = generateKeyPair()
  const clientAllowlist = new Allowlist()
  clientAllowlist.add({ publicKeyRaw: server.publicKeyRaw })
  // warm the code paths on a tiny list so the big load measures the load, not the JIT
  const before = mem()
  const t0 = performance.now()
  const list = await loadAllowlistFile(file)
  const loadMs = performance.now() - t0
  const after = mem()
  const now = Date.now()
  // cold lookups: the first lookup of each probe (imports its key); half of the probes
  const half = Math.floor(probes.length / 2)
  const cold: number[] = []
  for (let i = 0; i < half; i++) {
    const t = process.hrtime.bigint()
    const r = list.lookup(probes[i]!.fingerprint, now)
    cold.push(Number(process.hrtime.bigint() - t) / 1000)
    if (r.status !== 'ok') throw new Error(`probe ${i} not found: ${r.status}`)
  }
  // warm lookups of a known key
  const known = probes[0]!.fingerprint
  const iterations = 200_000
  const w0 = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) list.lookup(known, now)
  const warmUs = Number(process.hrtime.bigint() - w0) / 1000 / iterations
  // unknown key lookups
  const unknownFp = createHash('sha256').update('not listed').digest('hex')
  const u0 = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) list.lookup(unknownFp, now)
  const unknownUs = Number(process.hrtime.bigint() - u0) / 1000 / iterations
  // first handshake of a cold key, in process (the other half of the probes), after warming the engine on probe 0
  const nonces = new InMemoryNonceStore({ maxEntries: 1_000_000, sweepIntervalMs: 0 })
  const hs = createServerHandshake({ keyPair: server, allowlist: list, nonceStore: nonces })
  const trust = createServerTrust({ allowlist: clientAllowlist })
  const run = async (i: number): Promise<number> => {
    const client = createClientHandshake({ keyPair: probes[i]!, audience: 'bench', serverTrust: trust })
    const m1 = client.start()
    const t = performance.now()
    const m2 = hs.handleRequest(m1)
    let serverMs = performance.now() - t
    const m3 = await client.handleChallenge(m2)
    const t2 = performance.now()
    const r = await hs.handleResponse(m3)
    serverMs += performance.now() - t2
    client.handleComplete(r.message)
    return serverMs
  }
  for (let k = 0; k < 20; k++) await run(0)
  const warmHs: number[] = []
  for (let k = 0; k < 20; k++) warmHs.push(await run(0))
  const coldHs: number[] = []
  for (let i = half; i < probes.length; i++) coldHs.push(await run(i))
  nonces.close()
  return {
    entries: list.size,
    load_ms: loadMs,
    rss_mb: after.rss / 2 ** 20,
    heap_used_mb: after.heapUsed / 2 ** 20,
    rss_delta_mb: (after.rss - before.rss) / 2 ** 20,
    heap_delta_mb: (after.heapUsed - before.heapUsed) / 2 ** 20,
    bytes_per_key_heap: (after.heapUsed - before.heapUsed) / list.size,
    bytes_per_key_rss: (after.rss - before.rss) / list.size,
    lookup_warm_us: warmUs,
    lookup_unknown_us: unknownUs,
    lookup_cold_us: median(cold),
    lookup_cold_max_us: Math.max(...cold),
    server_handshake_warm_key_ms: median(warmHs),
    server_handshake_cold_key_ms: median(coldHs),
    server_handshake_cold_key_max_ms: Math.max(...coldHs),
  }
}

function nonceProbe(entries: number): Record<string, unknown> {
  const nonces: string[] = new Array<string>(entries)
  for (let i = 0; i < entries; i++) nonces[i] = randomBytes(32).toString('base64url')
  // The nonce strings arrive with the messages; count them in "before" so the delta is the store's own cost
  const before = mem()
  const store = new InMemoryNonceStore({ maxEntries: entries + 1, sweepIntervalMs: 0 })
  const exp = Date.now() + 60_000
  const t0 = performance.now()
  for (let i = 0; i < entries; i++) {
    // spread expiries over 60 s, one bucket per second, as a steady load would
    if (store.checkAndInsert(nonces[i]!, exp + (i % 60) * 1000) !== 'ok') throw new Error('insert failed')
  }
  const insertMs = performance.now() - t0
  const after = mem()
  const result = {
    entries: store.size(),
    insert_us: (insertMs * 1000) / entries,
    rss_delta_mb: (after.rss - before.rss) / 2 ** 20,
    heap_delta_mb: (after.heapUsed - before.heapUsed) / 2 ** 20,
    bytes_per_entry_heap: (after.heapUsed - before.heapUsed) / entries,
    bytes_per_entry_rss: (after.rss - before.rss) / entries,
    // the nonce strings themselves (43 chars, held by the store once the message is gone)
    string_bytes_per_entry: (before.heapUsed - baseline.heapUsed) / entries,
  }
  store.close()
  return result
}

let baseline = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }

if (process.argv[1]?.endsWith('memory-worker.ts')) {
  const [mode, a, b] = process.argv.slice(2)
  if (mode !== 'generate') baseline = mem()
  let out: Record<string, unknown>
  if (mode === 'allowlist' && a !== undefined && b !== undefined) out = await allowlistProbe(a, b)
  else if (mode === 'nonce' && a !== undefined) out = nonceProbe(Number(a))
  else if (mode === 'generate' && a !== undefined) out = await ensureAllowlistFile(Number(a))
  else throw new Error('usage: memory-worker.ts allowlist <file> <probes> | nonce <entries> | generate <size>')
  process.stdout.write(JSON.stringify(out) + '\n')
}
