/**
 * Memory and scale, one size per fresh child process (run with --expose-gc):
 *   node --expose-gc --import tsx bench/memory-worker.ts allowlist <file> <probe-file>
 *   node --expose-gc --import tsx bench/memory-worker.ts nonce <entries>
 *   node --import tsx bench/memory-worker.ts redis-nonce <entries> [redis://127.0.0.1:6379/14]
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
import type { Redis } from 'ioredis'
import { RedisNonceStore } from '../src/nonce/redis-nonce-store.js'
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

/** Redis db the bench writes to (the project's tests use db 0); refused unless empty at start. */
export const REDIS_BENCH_URL = 'redis://127.0.0.1:6379/14'
const REDIS_PREFIX = 'mcp-pki-bench:'

function infoField(info: string, field: string): number {
  const m = new RegExp(`^${field}:(\\d+)`, 'm').exec(info)
  if (m === null) throw new Error(`INFO has no ${field}`)
  return Number(m[1])
}

/** Keys in every db but `db` (to notice other clients writing during the measurement). */
function otherKeys(keyspace: string, db: number): number {
  let n = 0
  for (const m of keyspace.matchAll(/^db(\d+):keys=(\d+)/gm)) if (Number(m[1]) !== db) n += Number(m[2])
  return n
}

/**
 * The Redis nonce store at `entries` entries, measured like {@link nonceProbe}: Redis's
 * `used_memory` (INFO memory) before and after inserting through RedisNonceStore, per entry; a
 * `MEMORY USAGE` sample of the keys as a cross-check that other clients cannot disturb; insert
 * throughput with 256 checks in flight (how a busy server calls it) and the latency of one
 * check at a time. Same 43-character nonces as the in-memory probe, key `mcp-pki-bench:n:<nonce>`,
 * TTL 10 min (the real store sets one on every key). The bench's keys are deleted at the end.
 */
async function redisNonceProbe(entries: number, url: string): Promise<Record<string, unknown>> {
  const { Redis } = await import('ioredis')
  const db = Number(/\/(\d+)$/.exec(url)?.[1] ?? 0)
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, commandTimeout: 30_000 })
  await client.connect()
  try {
    const existing = await client.dbsize()
    if (existing !== 0) throw new Error(`redis db ${db} holds ${existing} keys: the bench uses it alone (pick another db with the url argument)`)
    const store = new RedisNonceStore({ redis: client, keyPrefix: REDIS_PREFIX })
    await store.ready()
    const nonces: string[] = new Array<string>(entries)
    for (let i = 0; i < entries; i++) nonces[i] = randomBytes(32).toString('base64url')
    const exp = Date.now() + 600_000
    const settle = async (): Promise<{ used: number; others: number }> => {
      await new Promise((r) => setTimeout(r, 200)) // let client buffers drain before reading INFO
      return { used: infoField(await client.info('memory'), 'used_memory'), others: otherKeys(await client.info('keyspace'), db) }
    }
    const before = await settle()
    // one at a time: the latency of a check (first 2000 entries, or all of them when fewer)
    const seq = Math.min(2000, entries)
    const s0 = performance.now()
    for (let i = 0; i < seq; i++) if ((await store.checkAndInsert(nonces[i]!, exp)) !== 'ok') throw new Error('insert failed')
    const seqUs = ((performance.now() - s0) * 1000) / seq
    // the rest with 256 in flight
    const inflight = 256
    let next = seq
    const t0 = performance.now()
    await Promise.all(
      Array.from({ length: inflight }, async () => {
        for (let i = next++; i < entries; i = next++) if ((await store.checkAndInsert(nonces[i]!, exp)) !== 'ok') throw new Error('insert failed')
      }),
    )
    const parallelMs = performance.now() - t0
    const after = await settle()
    const keys = await client.dbsize()
    if (keys !== entries) throw new Error(`expected ${entries} keys in db ${db}, found ${keys}`)
    // replays are refused (sanity) and cost the same round trip
    if ((await store.checkAndInsert(nonces[0]!, exp)) !== 'replay') throw new Error('replay not detected')
    const sample = Math.min(500, entries)
    const pipe = client.pipeline()
    for (let i = 0; i < sample; i++) pipe.memory('USAGE', `${REDIS_PREFIX}n:${nonces[Math.floor((i * entries) / sample)]!}`, 'SAMPLES', '0')
    const usage = ((await pipe.exec()) ?? []).map(([err, v]) => (err === null ? Number(v) : Number.NaN))
    const serverInfo = await client.info('server')
    const result = {
      entries: keys,
      redis_version: /^redis_version:(\S+)/m.exec(serverInfo)?.[1],
      used_memory_delta_mb: (after.used - before.used) / 2 ** 20,
      bytes_per_entry_used_memory: (after.used - before.used) / entries,
      memory_usage_bytes_per_key: usage.reduce((a, b) => a + b, 0) / usage.length,
      insert_seq_us: seqUs,
      inserts_per_s_256_inflight: entries > seq ? ((entries - seq) * 1000) / parallelMs : Number.NaN,
      // non-zero: another client changed keys in other dbs meanwhile, so used_memory is less exact
      other_dbs_keys_changed: after.others - before.others,
    }
    return result
  } finally {
    await deletePrefix(client, `${REDIS_PREFIX}*`)
    await client.quit()
  }
}

/** Deletes the bench's keys (SCAN + UNLINK, only our prefix, only our db). */
async function deletePrefix(client: Redis, pattern: string): Promise<void> {
  let cursor = '0'
  do {
    const [c, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 10_000)
    cursor = c
    if (keys.length > 0) await client.unlink(...keys)
  } while (cursor !== '0')
}

let baseline = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }

if (/memory-worker\.[jt]s$/.test(process.argv[1] ?? '')) {
  const [mode, a, b] = process.argv.slice(2)
  if (mode !== 'generate' && mode !== 'redis-nonce') baseline = mem()
  let out: Record<string, unknown>
  if (mode === 'allowlist' && a !== undefined && b !== undefined) out = await allowlistProbe(a, b)
  else if (mode === 'nonce' && a !== undefined) out = nonceProbe(Number(a))
  else if (mode === 'redis-nonce' && a !== undefined) out = await redisNonceProbe(Number(a), b ?? REDIS_BENCH_URL)
  else if (mode === 'generate' && a !== undefined) out = await ensureAllowlistFile(Number(a))
  else throw new Error('usage: memory-worker.ts allowlist <file> <probes> | nonce <entries> | redis-nonce <entries> [redis-url] | generate <size>')
  process.stdout.write(JSON.stringify(out) + '\n')
}
