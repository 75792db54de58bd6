/**
 * Allowlist scale benchmark: load time, RSS and heap after load, cold / warm / unknown lookup and
 * has() for several list sizes, each size in a fresh child process (so RSS is that size's alone).
 *
 *   node --import tsx bench/allowlist-scale.ts [--sizes 1000,10000,100000,1000000] [--json]
 *
 * Files are generated once and cached in the OS temp dir (mcp-allowlist-scale/): random 32-byte
 * public keys with correct fingerprints, written in the line layout `Allowlist.toJSON` writes, plus
 * 100 real ed25519 keys at spread positions (used for the cold lookups, which import the key).
 * With --json one JSON line is printed: {"allowlist_scale":[{size, load_ms, rss_mb, heap_used_mb, …}]}.
 * @module
 */
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { loadAllowlistFile } from '../src/allowlist/allowlist-file.js'
import { generateKeyPair } from '../src/keys/key-pair.js'
import { TS_LOADER } from './lib.js'

const CACHE = join(tmpdir(), 'mcp-allowlist-scale')
const PROBES = 100

interface Figures {
  size: number
  load_ms: number
  rss_mb: number
  heap_used_mb: number
  external_mb: number
  lookup_cold_first_us: number
  lookup_cold_median_us: number
  lookup_cold_max_us: number
  lookup_warm_us: number
  lookup_unknown_us: number
  has_us: number
}

async function ensureFile(size: number): Promise<{ file: string; probes: string[] }> {
  mkdirSync(CACHE, { recursive: true })
  const file = join(CACHE, `allowlist-${size}.json`)
  const probesFile = join(CACHE, `allowlist-${size}.probes.json`)
  if (existsSync(file) && existsSync(probesFile)) return { file, probes: JSON.parse(readFileSync(probesFile, 'utf8')) as string[] }
  const probeRaw = Array.from({ length: Math.min(PROBES, size) }, () => generateKeyPair().publicKeyRaw)
  const stride = Math.max(1, Math.floor(size / probeRaw.length))
  const probes: string[] = []
  const tmp = `${file}.${process.pid}.tmp`
  const out = createWriteStream(tmp)
  const write = (s: string): Promise<void> | undefined => (out.write(s) ? undefined : new Promise((r) => out.once('drain', () => r())))
  await write(`{\n  "version": 1,\n  "updated_at": "${new Date().toISOString()}",\n  "keys": {\n`)
  let chunk: string[] = []
  let p = 0
  for (let i = 0; i < size; i++) {
    const isProbe = i % stride === 0 && p < probeRaw.length
    const raw = isProbe ? probeRaw[p++]! : randomBytes(32)
    const fp = createHash('sha256').update(raw).digest('hex')
    if (isProbe) probes.push(fp)
    const rec = `{"fingerprint":"${fp}","public_key":"${raw.toString('base64url')}","description":"bench key ${i}","added_at":"2026-01-01T00:00:00.000Z","added_by":"bench@localhost","metadata":{"role":"trusted_client"}}`
    chunk.push(`    "${fp}": ${rec}${i === size - 1 ? '' : ','}\n`)
    if (chunk.length >= 5000) {
      await write(chunk.join(''))
      chunk = []
    }
  }
  await write(`${chunk.join('')}  }\n}\n`)
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())))
  renameSync(tmp, file)
  writeFileSync(probesFile, JSON.stringify(probes))
  return { file, probes }
}

function timeUs(iterations: number, fn: () => void): number {
  for (let i = 0; i < Math.min(iterations, 1000); i++) fn()
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < iterations; i++) fn()
  return Number(process.hrtime.bigint() - t0) / 1000 / iterations
}

async function child(size: number, file: string, probesFile: string): Promise<void> {
  const probes = JSON.parse(readFileSync(probesFile, 'utf8')) as string[]
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const t0 = performance.now()
  const list = await loadAllowlistFile(file)
  const loadMs = performance.now() - t0
  if (list.size !== size) throw new Error(`loaded ${list.size} entries, expected ${size}`)
  gc?.()
  const mem = process.memoryUsage()
  const now = Date.now()
  const cold: number[] = []
  for (const fp of probes.slice(0, probes.length >> 1)) {
    const s = process.hrtime.bigint()
    const r = list.lookup(fp, now)
    cold.push(Number(process.hrtime.bigint() - s) / 1000)
    if (r.status !== 'ok') throw new Error(`probe ${fp}: ${r.status}`)
  }
  const known = probes[probes.length - 1]!
  list.lookup(known, now)
  const unknown = 'f'.repeat(64)
  const sorted = [...cold].sort((a, b) => a - b)
  const figures: Figures = {
    size,
    load_ms: Math.round(loadMs),
    rss_mb: Math.round(mem.rss / 2 ** 20),
    heap_used_mb: Math.round(mem.heapUsed / 2 ** 20),
    external_mb: Math.round(mem.external / 2 ** 20),
    lookup_cold_first_us: Math.round(cold[0]! * 10) / 10,
    lookup_cold_median_us: Math.round(sorted[sorted.length >> 1]! * 10) / 10,
    lookup_cold_max_us: Math.round(sorted[sorted.length - 1]! * 10) / 10,
    lookup_warm_us: Math.round(timeUs(200_000, () => list.lookup(known, now)) * 1000) / 1000,
    lookup_unknown_us: Math.round(timeUs(200_000, () => list.lookup(unknown, now)) * 1000) / 1000,
    has_us: Math.round(timeUs(200_000, () => list.has(known, now)) * 1000) / 1000,
  }
  process.stdout.write(`${JSON.stringify(figures)}\n`)
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  if (args[0] === '--child') {
    await child(Number(args[1]), args[2]!, args[3]!)
    return
  }
  const json = args.includes('--json')
  const at = args.indexOf('--sizes')
  const sizes = (at >= 0 ? args[at + 1] ?? '' : '1000,10000,100000,1000000').split(',').map(Number)
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) throw new Error('usage: allowlist-scale.ts [--sizes 1000,10000] [--json]')
  const results: Figures[] = []
  for (const size of sizes) {
    const { file } = await ensureFile(size)
    const probesFile = join(CACHE, `allowlist-${size}.probes.json`)
    const r = spawnSync(process.execPath, ['--expose-gc', ...TS_LOADER, fileURLToPath(import.meta.url), '--child', String(size), file, probesFile], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    if (r.status !== 0) throw new Error(`child for ${size} failed (${r.status ?? r.signal})`)
    const figures = JSON.parse(r.stdout.trim().split('\n').pop()!) as Figures
    results.push(figures)
    if (!json) {
      const f = figures
      console.log(
        `${String(size).padStart(8)} entries: load ${f.load_ms} ms, RSS ${f.rss_mb} MB, heapUsed ${f.heap_used_mb} MB, external ${f.external_mb} MB; ` +
          `lookup cold first ${f.lookup_cold_first_us} µs / median ${f.lookup_cold_median_us} µs / max ${f.lookup_cold_max_us} µs, ` +
          `warm ${f.lookup_warm_us} µs, unknown ${f.lookup_unknown_us} µs, has ${f.has_us} µs`,
      )
    }
  }
  if (json) process.stdout.write(`${JSON.stringify({ allowlist_scale: results })}\n`)
}

await main()
