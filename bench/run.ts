/**
 * `npm run bench`: every benchmark of the project in one process tree, printed as tables and
 * written to bench/results.json.
 *
 *   node --import tsx bench/run.ts [--quick] [--only floor,inprocess,session,network,memory,mcp,sustained,workers,authz,metrics]
 *                                  [--rounds N] [--out path]
 *
 * Each group runs in fresh child processes. Every figure is a median over several runs with its
 * spread; ours/peer ratios are computed pair by pair within a round (ours, peer, ours, peer …).
 * @module
 */
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeCerts, type CertFiles } from './certs.js'
import { runSustained, type SustainedResult } from './sustained.js'
import { runWorkersBench, type WorkersResult } from './workers.js'
import { benchFile, fmt, fmtStat, round, statOf, table, TS_LOADER, Worker, type Message, type Stat } from './lib.js'
import { toolsCallTable, type ToolsCallResult } from './mcp-tools-call.js'
import { floorTable, runFloor, type FloorResult } from './tools-call-floor.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const GROUPS = ['floor', 'inprocess', 'session', 'network', 'memory', 'mcp', 'sustained', 'workers', 'authz', 'metrics'] as const
type Group = (typeof GROUPS)[number]

interface Args {
  quick: boolean
  only: Set<Group>
  rounds: number
  out: string
}

function parseArgs(argv: string[]): Args {
  let quick = false
  let only = new Set<Group>(GROUPS)
  let rounds: number | undefined
  let out = join(HERE, 'results.json')
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--quick') quick = true
    else if (a === '--only') {
      const list = (argv[++i] ?? '').split(',').filter(Boolean)
      for (const g of list) if (!(GROUPS as readonly string[]).includes(g)) throw new Error(`unknown group ${g}; groups: ${GROUPS.join(', ')}`)
      only = new Set(list as Group[])
    } else if (a === '--rounds') rounds = Number(argv[++i])
    else if (a === '--out') out = argv[++i] ?? out
    else if (a === '--help' || a === '-h') {
      console.log(`usage: node --import tsx bench/run.ts [--quick] [--only ${GROUPS.join(',')}] [--rounds N] [--out file]`)
      process.exit(0)
    } else throw new Error(`unknown argument ${a}`)
  }
  return { quick, only, rounds: rounds ?? (quick ? 2 : 3), out }
}

const output: string[] = []
function print(text: string): void {
  output.push(text)
  process.stdout.write(text)
}
function progress(text: string): void {
  process.stderr.write(`  … ${text}\n`)
}

// ---------- in-process groups ----------

async function micro(group: 'floor' | 'inprocess' | 'session', args: Args): Promise<Record<string, unknown>> {
  const w = new Worker('./micro-worker.ts')
  try {
    await w.ready()
    const r = await w.request(group, { quick: args.quick })
    return r.result as Record<string, unknown>
  } finally {
    await w.stop()
  }
}

function printFloor(r: Record<string, Stat>): void {
  const rows = Object.entries(r).map(([k, s]) => [k, fmtStat(s, 2), fmt(1e6 / s.median, 0)])
  print(table('Floor: single operations, in-process (µs per call, median [min–max] of runs)', ['operation', 'µs', 'ops/s'], rows))
}

function printInprocess(r: Record<string, unknown>): void {
  const s = (k: string): Stat => r[k] as Stat
  const parts = r.crypto_parts_us as Record<string, number>
  print(
    table('Our handshake in-process, no network (µs per handshake)', ['figure', 'median [min–max]'], [
      ['client + server, one handshake', fmtStat(s('handshake_us'))],
      ['server CPU (process.cpuUsage around server calls)', fmtStat(s('server_cpu_us'))],
      ['server wall time in its two calls', fmtStat(s('server_wall_us'))],
      ['server core crypto: 2 sign + verify + X25519 keygen + DH + HKDF', fmtStat(s('server_crypto_core_us'))],
      ['server all crypto (+ key import/export, 3 AES-GCM, hashes)', fmtStat(s('server_crypto_all_us'))],
      ['ratio server CPU / core crypto (target ≤ 2)', fmtStat(s('ratio_cpu_to_core_crypto'), 2)],
      ['ratio server CPU / all crypto', fmtStat(s('ratio_cpu_to_all_crypto'), 2)],
      ['crypto parts (µs)', Object.entries(parts).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')],
    ]),
  )
}

function printSession(r: Record<string, unknown>): void {
  const b = r.breakdown_us as Record<string, Stat>
  print(
    table('Session check per request (µs per call)', ['step', 'median [min–max]'], [
      ['verifier.verify: token + proof + nonce (target < 5)', fmtStat(r.verify_us as Stat, 2)],
      ['verifier.verifyNow: the same, synchronous (in-memory nonce store)', fmtStat(r.verify_now_us as Stat | undefined, 2)],
      ['verifier.verifyToken (token only, cached)', fmtStat(r.verify_token_only_us as Stat, 2)],
      ['client: createRequestProof (per MCP request)', fmtStat(r.create_proof_us as Stat | undefined, 2)],
      ...Object.entries(b).map(([k, s]) => [`  ${k}`, fmtStat(s, 2)]),
    ]),
  )
}

// ---------- network ----------

interface NetTarget {
  name: 'http' | 'https' | 'ws' | 'tls' | 'echo' | 'cryptofloor'
  server: Worker
  target: Record<string, unknown>
}

/** The two floors and the peer: every other target is ours. */
const NOT_OURS: readonly string[] = ['tls', 'echo', 'cryptofloor']

/** What the load worker is handed for `mode` (bench/load-worker.ts Target). */
function netTarget(mode: NetTarget['name'], port: number, k: { certs: CertFiles; clientSeed: string; serverPublicKey: string }): Record<string, unknown> {
  if (mode === 'tls') return { kind: 'tls', port, certs: k.certs }
  if (mode === 'echo') return { kind: 'echo', port }
  if (mode === 'cryptofloor') return { kind: 'cryptofloor', port, clientSeed: k.clientSeed, serverPublicKey: k.serverPublicKey }
  const url = mode === 'ws' ? `ws://127.0.0.1:${port}/ws` : `${mode}://127.0.0.1:${port}/auth`
  return { kind: 'ours', transport: mode, url, clientSeed: k.clientSeed, serverPublicKey: k.serverPublicKey, ca: k.certs.ca }
}

type NetRound = Record<string, { p50: number; p99: number; rate: Record<number, number>; cpu: Record<string, number>; coreUs?: number; errors: number }>

/** Per-round pairs of `n` against `base` (×, >1 means `n` is faster or cheaper). */
function pairRatios(rounds: readonly NetRound[], n: string, base: string, concurrencies: readonly number[]): Record<string, Stat> {
  return {
    seq_p50_speedup: statOf(rounds.map((r) => r[base]!.p50 / r[n]!.p50)),
    ...Object.fromEntries(concurrencies.map((c) => [`throughput_c${c}`, statOf(rounds.map((r) => r[n]!.rate[c]! / r[base]!.rate[c]!))])),
    server_cpu_c10: statOf(rounds.map((r) => r[base]!.cpu.c10! / r[n]!.cpu.c10!)),
  }
}

async function network(args: Args): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-pki-bench-'))
  const workers: Worker[] = []
  try {
    const certs: CertFiles = makeCerts(dir)
    const { generateKeyPair, privateKeySeed } = await import('../src/keys/key-pair.js')
    const server = generateKeyPair()
    const client = generateKeyPair()
    const serverSeed = privateKeySeed(server.privateKey).toString('base64url')
    const clientSeed = privateKeySeed(client.privateKey).toString('base64url')
    const wsAvailable = existsSync(join(HERE, '../src/transport/ws-client.ts')) && existsSync(join(HERE, '../src/transport/ws-server.ts'))
    const modes: NetTarget['name'][] = [...(wsAvailable ? (['http', 'https', 'ws'] as const) : (['http', 'https'] as const)), 'tls', 'echo', 'cryptofloor']
    const keys = { certs, clientSeed, serverPublicKey: server.publicKeyRaw.toString('base64url') }
    const targets: NetTarget[] = []
    for (const mode of modes) {
      const w = new Worker('./server-worker.ts')
      workers.push(w)
      await w.ready()
      const r = await w.request('start', { mode, serverSeed, clientPublicKey: client.publicKeyRaw.toString('base64url'), certs })
      targets.push({ name: mode, server: w, target: netTarget(mode, Number(r.port), keys) })
    }
    const load = new Worker('./load-worker.ts')
    workers.push(load)
    await load.ready()

    const seqN = args.quick ? 100 : 1000
    const seqWarm = args.quick ? 30 : 200
    const durationMs = args.quick ? 400 : 2000
    const warmupMs = args.quick ? 150 : 400
    const concurrencies = [1, 10, 50]
    const rounds: NetRound[] = []
    for (let r = 0; r < args.rounds; r++) {
      const round: NetRound = {}
      for (const t of targets) {
        progress(`round ${r + 1}/${args.rounds}: ${t.name}`)
        const rec = { p50: 0, p99: 0, rate: {} as Record<number, number>, cpu: {} as Record<string, number>, errors: 0 } as NetRound[string]
        const c0 = await t.server.request('cpu')
        const sq = await load.request('seq', { target: t.target, n: seqN, warmup: seqWarm })
        const c1 = await t.server.request('cpu')
        rec.p50 = Number(sq.p50)
        rec.p99 = Number(sq.p99)
        rec.cpu.seq = cpuPer(c0, c1)
        for (const c of concurrencies) {
          const marks: Promise<Message>[] = []
          load.onEvent = (m) => {
            if (m.type === 'window') marks.push(t.server.request('cpu'))
          }
          const tp = await load.request('throughput', { target: t.target, concurrency: c, durationMs, warmupMs })
          load.onEvent = undefined
          const [a, b] = await Promise.all(marks)
          rec.rate[c] = Number(tp.rate)
          rec.errors += Number(tp.errors)
          if (Number(tp.errors) > 0) progress(`${t.name} c=${c}: ${String(tp.errors)} errors, first: ${String(tp.firstError)}`)
          if (a !== undefined && b !== undefined) rec.cpu[`c${c}`] = cpuPer(a, b)
        }
        if (t.name !== 'tls' && t.name !== 'echo') rec.coreUs = Number((await t.server.request('crypto', { iterations: args.quick ? 100 : 400 })).coreUs)
        round[t.name] = rec
      }
      rounds.push(round)
    }
    // summarize
    const names = targets.map((t) => t.name)
    const perTarget: Record<string, unknown> = {}
    for (const n of names) {
      const recs = rounds.map((r) => r[n]!)
      const cpuKeys = Object.keys(recs[0]!.cpu)
      perTarget[n] = {
        seq_p50_ms: statOf(recs.map((x) => x.p50)),
        seq_p99_ms: statOf(recs.map((x) => x.p99)),
        throughput: Object.fromEntries(concurrencies.map((c) => [`c${c}`, statOf(recs.map((x) => x.rate[c]!))])),
        server_cpu_us: Object.fromEntries(cpuKeys.map((k) => [k, statOf(recs.map((x) => x.cpu[k]!))])),
        ...(n === 'tls' || n === 'echo'
          ? {}
          : {
              server_core_crypto_us: statOf(recs.map((x) => x.coreUs!)),
              cpu_ratio_core_crypto_c10: statOf(recs.map((x) => x.cpu.c10! / x.coreUs!)),
            }),
        errors: recs.reduce((s, x) => s + x.errors, 0),
      }
    }
    // ours and the crypto floor against TLS; ours against the crypto floor (>1: faster or cheaper)
    const vsTls = Object.fromEntries(names.filter((x) => x !== 'tls' && x !== 'echo').map((n) => [n, pairRatios(rounds, n, 'tls', concurrencies)]))
    const vsFloor = Object.fromEntries(names.filter((x) => !NOT_OURS.includes(x)).map((n) => [n, pairRatios(rounds, n, 'cryptofloor', concurrencies)]))
    return { rounds: args.rounds, seq_n: seqN, duration_ms: durationMs, targets: perTarget, ours_vs_tls: vsTls, ours_vs_floor: vsFloor, ws_available: wsAvailable }
  } finally {
    for (const w of workers) await w.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

function cpuPer(a: Message, b: Message): number {
  const hs = Number(b.handshakes) - Number(a.handshakes)
  return hs > 0 ? (Number(b.cpuUs) - Number(a.cpuUs)) / hs : Number.NaN
}

function printNetwork(r: Record<string, unknown>): void {
  const targets = r.targets as Record<string, Record<string, unknown>>
  const rows: string[][] = []
  for (const [n, t] of Object.entries(targets)) {
    const tp = t.throughput as Record<string, Stat>
    const cpu = t.server_cpu_us as Record<string, Stat>
    rows.push([
      targetLabel(n),
      fmtStat(t.seq_p50_ms as Stat, 3),
      fmtStat(t.seq_p99_ms as Stat, 3),
      fmtStat(tp.c1, 0),
      fmtStat(tp.c10, 0),
      fmtStat(tp.c50, 0),
      fmtStat(cpu.c10, 0),
      t.cpu_ratio_core_crypto_c10 === undefined ? '—' : fmtStat(t.cpu_ratio_core_crypto_c10 as Stat, 2),
    ])
  }
  print(
    table(
      `Handshakes between two processes on loopback (${String(r.rounds)} rounds; seq over ${String(r.seq_n)} handshakes; throughput windows ${String(r.duration_ms)} ms)`,
      ['target', 'seq p50 ms', 'seq p99 ms', 'hs/s c=1', 'hs/s c=10', 'hs/s c=50', 'server CPU µs/hs (c=10)', 'CPU / core crypto'],
      rows,
    ),
  )
  print(ratioTable('Ours (and the crypto floor) vs TLS 1.3 mutual auth, per-round pairs (×, higher = faster than TLS; target throughput ≥ 5×)', r.ours_vs_tls))
  if (r.ours_vs_floor !== undefined) print(ratioTable('Ours vs the crypto floor (protocol crypto + 2 bare round trips), per-round pairs (× floor p50 / ours, ours hs/s / floor, floor CPU / ours; 1 = at the floor)', r.ours_vs_floor))
}

function targetLabel(n: string): string {
  if (n === 'tls') return 'TLS 1.3 mutual (peer)'
  if (n === 'echo') return 'floor: 2 bare HTTP round trips'
  if (n === 'cryptofloor') return 'floor: protocol crypto + 2 bare round trips'
  return `ours ${n}`
}

function ratioTable(title: string, ratios: unknown): string {
  const rows = Object.entries(ratios as Record<string, Record<string, Stat>>).map(([n, x]) => [
    n === 'cryptofloor' ? 'floor (crypto + 2 round trips)' : n,
    fmtStat(x.seq_p50_speedup, 2),
    fmtStat(x.throughput_c1, 2),
    fmtStat(x.throughput_c10, 2),
    fmtStat(x.throughput_c50, 2),
    fmtStat(x.server_cpu_c10, 2),
  ])
  return table(title, ['transport', 'p50 latency', 'throughput c=1', 'c=10', 'c=50', 'server CPU'], rows)
}

// ---------- memory ----------

function runNode(script: string, argv: string[], execArgv: string[] = []): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...execArgv, ...TS_LOADER, join(HERE, benchFile(script)), ...argv], { maxBuffer: 16 << 20, timeout: 300_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`${script} ${argv.join(' ')}: ${err.message}\n${stderr.slice(-2000)}`))
        return
      }
      const line = stdout.trim().split('\n').pop() ?? ''
      try {
        resolve(JSON.parse(line) as Record<string, unknown>)
      } catch {
        reject(new Error(`${script}: no JSON result in output: ${stdout.slice(-500)}`))
      }
    })
  })
}

function summarize(samples: Record<string, unknown>[]): Record<string, Stat> {
  const out: Record<string, Stat> = {}
  for (const k of Object.keys(samples[0] ?? {})) {
    if (typeof samples[0]![k] === 'number') out[k] = statOf(samples.map((s) => s[k] as number))
  }
  return out
}

async function memory(args: Args): Promise<Record<string, unknown>> {
  const sizes = args.quick ? [1000, 10_000] : [1000, 10_000, 100_000, 1_000_000]
  const nonceSizes = args.quick ? [10_000] : [10_000, 100_000, 1_000_000]
  const runs = args.quick ? 1 : 3
  const allowlist: Record<string, unknown> = {}
  for (const size of sizes) {
    const gen = await runNode('memory-worker.ts', ['generate', String(size)])
    if (Number(gen.generatedMs) > 0) progress(`generated allowlist of ${size} keys in ${fmt(Number(gen.generatedMs) / 1000, 1)} s (cached in ${dirname(String(gen.file))})`)
    const samples: Record<string, unknown>[] = []
    for (let i = 0; i < runs; i++) {
      progress(`allowlist ${size}: run ${i + 1}/${runs}`)
      samples.push(await runNode('memory-worker.ts', ['allowlist', String(gen.file), String(gen.probes)], ['--expose-gc']))
    }
    allowlist[String(size)] = summarize(samples)
  }
  const nonce: Record<string, unknown> = {}
  for (const size of nonceSizes) {
    const samples: Record<string, unknown>[] = []
    for (let i = 0; i < runs; i++) {
      progress(`nonce store ${size}: run ${i + 1}/${runs}`)
      samples.push(await runNode('memory-worker.ts', ['nonce', String(size)], ['--expose-gc']))
    }
    nonce[String(size)] = summarize(samples)
  }
  // the Redis nonce store, same sizes (Redis at 127.0.0.1:6379, db 14; skipped if unreachable)
  const redisNonce: Record<string, unknown> = {}
  let redisError: string | undefined
  for (const size of nonceSizes) {
    const samples: Record<string, unknown>[] = []
    for (let i = 0; i < runs && redisError === undefined; i++) {
      progress(`redis nonce store ${size}: run ${i + 1}/${runs}`)
      try {
        samples.push(await runNode('memory-worker.ts', ['redis-nonce', String(size)]))
      } catch (err) {
        redisError = (err instanceof Error ? err.message : String(err)).split('\n').slice(0, 3).join(' ')
        progress(`redis nonce store skipped: ${redisError}`)
      }
    }
    if (samples.length > 0) redisNonce[String(size)] = { ...summarize(samples), redis_version: samples[0]!.redis_version }
  }
  return { runs, allowlist, nonce, redis_nonce: redisNonce, ...(redisError === undefined ? {} : { redis_nonce_error: redisError }) }
}

function printMemory(r: Record<string, unknown>): void {
  const al = r.allowlist as Record<string, Record<string, Stat>>
  print(
    table(
      `Allowlist at scale (fresh process per size, ${String(r.runs)} runs; targets at 1M: load < 5 s, RSS < 500 MB, cold handshake < 1 ms)`,
      ['keys', 'load ms', 'RSS MB', 'heap MB', 'heap B/key', 'lookup warm µs', 'lookup cold µs', 'server hs cold key ms', 'server hs warm key ms'],
      Object.entries(al).map(([n, s]) => [
        Number(n).toLocaleString('en-US'),
        fmtStat(s.load_ms, 0),
        fmtStat(s.rss_mb, 0),
        fmtStat(s.heap_used_mb, 0),
        fmt(s.bytes_per_key_heap?.median, 0),
        fmt(s.lookup_warm_us?.median, 2),
        fmt(s.lookup_cold_us?.median, 1),
        fmtStat(s.server_handshake_cold_key_ms, 3),
        fmt(s.server_handshake_warm_key_ms?.median, 3),
      ]),
    ),
  )
  const nn = r.nonce as Record<string, Record<string, Stat>>
  print(
    table(
      'In-memory nonce store (fresh process per size)',
      ['entries', 'insert µs', 'heap delta MB', 'heap B/entry', 'RSS B/entry', '+ nonce string B/entry'],
      Object.entries(nn).map(([n, s]) => [
        Number(n).toLocaleString('en-US'),
        fmt(s.insert_us?.median, 2),
        fmtStat(s.heap_delta_mb, 1),
        fmt(s.bytes_per_entry_heap?.median, 0),
        fmt(s.bytes_per_entry_rss?.median, 0),
        fmt(s.string_bytes_per_entry?.median, 0),
      ]),
    ),
  )
  const rn = (r.redis_nonce ?? {}) as Record<string, Record<string, Stat> & { redis_version?: string }>
  const version = Object.values(rn)[0]?.redis_version
  print(
    table(
      `Redis nonce store through RedisNonceStore (Redis ${version ?? '?'} on loopback, db 14, fresh process per size, ${String(r.runs)} runs)`,
      ['entries', 'insert µs (1 at a time)', 'inserts/s (256 in flight)', 'used_memory delta MB', 'used_memory B/entry', 'MEMORY USAGE B/key', 'other dbs changed keys'],
      Object.entries(rn).map(([n, s]) => [
        Number(n).toLocaleString('en-US'),
        fmtStat(s.insert_seq_us, 1),
        fmtStat(s.inserts_per_s_256_inflight, 0),
        fmtStat(s.used_memory_delta_mb, 1),
        fmt(s.bytes_per_entry_used_memory?.median, 0),
        fmt(s.memory_usage_bytes_per_key?.median, 0),
        fmt(s.other_dbs_keys_changed?.max, 0),
      ]),
    ),
  )
  if (r.redis_nonce_error !== undefined) print(`\n(Redis nonce store: ${String(r.redis_nonce_error)})\n`)
}

// ---------- MCP (bench/mcp-tools-call.ts, owned by the MCP integration) ----------


async function mcp(args: Args): Promise<Record<string, unknown> | null> {
  const script = join(HERE, benchFile('mcp-tools-call.ts'))
  if (!existsSync(script)) return null
  return new Promise((resolve) => {
    execFile(process.execPath, [...TS_LOADER, script, ...(args.quick ? ['--quick'] : []), '--json'], { maxBuffer: 16 << 20, timeout: 600_000 }, (err, stdout, stderr) => {
      const lines = stdout.trim().split('\n')
      let parsed: Record<string, unknown> | undefined
      for (let i = lines.length - 1; i >= 0 && parsed === undefined; i--) {
        try {
          const v = JSON.parse(lines[i]!) as unknown
          if (v !== null && typeof v === 'object') parsed = v as Record<string, unknown>
        } catch {
          // not the JSON line
        }
      }
      resolve({
        ok: err === null,
        ...(err === null ? {} : { error: `${err.message}\n${stderr.slice(-1000)}` }),
        result: parsed ?? null,
        text: parsed === undefined ? stdout.slice(-4000) : undefined,
      })
    })
  })
}

function printMcpFloor(floor: FloorResult, steps: FloorResult): void {
  const how = (r: FloorResult): string => `${r.calls_per_kind} calls per path in rotating blocks of ${r.kinds.length} paths × 10 calls; "over plain" = median over block groups of (path − plain); CPU = process.cpuUsage of each process`
  print(`\n### MCP tools/call: the floor of a proof-bound session check (bench/tools-call-floor.ts)\n\n${how(floor)}\n\n`)
  print(floorTable(floor) + '\n')
  const x = floor.rows
  print(`  the floor (a minimal check with the proof MAC, nothing else): ${x.crypto?.over_plain_percent}% of CPU over plain; mcp-pki-auth: ${x.auth?.over_plain_percent}%\n`)
  print(`\nStep by step (all five paths in one rotation, so each is colder than above: compare within this table)\n\n${how(steps)}\n\n`)
  print(floorTable(steps) + '\n')
}

function printMcp(r: Record<string, unknown> | null): void {
  const title = '\n### MCP tools/call: plain SDK server vs bearer JWT vs mcp-pki-auth (bench/mcp-tools-call.ts)\n'
  if (r === null) {
    print(`${title}\n(bench/mcp-tools-call.ts not present: skipped)\n`)
    return
  }
  const res = r.result as (ToolsCallResult & Record<string, unknown>) | null
  if (res === null) {
    print(`${title}\n${r.ok ? '' : 'FAILED: '}${String(r.error ?? '')}\n${String(r.text ?? '')}\n`)
    return
  }
  print(`${title}\n${String(res.rounds)} rounds × ${String(res.calls_per_round)} sequential calls per peer (rotating blocks of 10), then ${String(res.concurrent.clients)} clients per peer at once; % = median of per-round time ratios\n`)
  print(toolsCallTable(res) + '\n')
  const rows = flatten(res).map(([k, v]) => [k, typeof v === 'number' ? fmt(v, 1) : String(v)])
  print(table('All figures', ['figure', 'value'], rows))
}

function flatten(v: Record<string, unknown>, prefix = ''): [string, unknown][] {
  const out: [string, unknown][] = []
  for (const [k, x] of Object.entries(v)) {
    const key = prefix ? `${prefix}.${k}` : k
    if (x !== null && typeof x === 'object' && !Array.isArray(x)) {
      const o = x as Record<string, unknown>
      if (typeof o.median === 'number') out.push([key, fmtStat(o as unknown as Stat, 3)])
      else out.push(...flatten(o, key))
    } else if (!Array.isArray(x)) out.push([key, x])
  }
  return out
}

function printSustained(r: SustainedResult): void {
  const rows = [
    ['duration', `${r.seconds} s`],
    ['clients (one session each)', String(r.clients)],
    ['authenticated requests', String(r.requests)],
    ['requests/s (whole run)', String(r.requestsPerSecond)],
    ['answers', Object.entries(r.statuses).map(([k, n]) => `${k}: ${n}`).join(', ')],
    ['server_busy (target: 0)', String(r.serverBusy)],
    ['server RSS start → end', `${r.rssMiBStart} → ${r.rssMiBEnd} MiB`],
    ['live request windows (last slice)', String(r.slices.at(-1)?.windows ?? '—')],
  ]
  print(table('Sustained load, default configuration (in-memory replay memory), /whoami with a proof per request', ['figure', 'value'], rows))
}

function printWorkers(r: WorkersResult): void {
  const rows = [
    ['1 process, requests/s (each round)', r.one.join(', ')],
    ['2 workers, requests/s (each round)', r.two.join(', ')],
    ['2 workers / 1 process (medians)', `${r.ratio}×`],
    ['answers other than 200', Object.entries(r.non200).map(([k, n]) => `${k}: ${n}`).join(', ') || 'none'],
    ['one replay check over IPC, waited for', `${fmt(r.ipc.sequentialUs, 1)} µs`],
    ['replay checks/s, one worker, 64 in flight', fmt(r.ipc.pipelinedPerSecond, 0)],
    ['primary CPU per replay check', `${fmt(r.ipc.primaryCpuUs, 2)} µs (one primary core: ~${fmt(1e6 / r.ipc.primaryCpuUs / 1000, 0)}k checks/s)`],
  ]
  print(table(`--workers: /whoami with a proof per request, ${r.clients} clients, ${r.seconds} s per round, rounds alternating`, ['figure', 'value'], rows))
}

// ---------- authorization ----------

async function authz(args: Args): Promise<Record<string, unknown>> {
  return runNode('authz-decision.ts', args.quick ? ['--quick'] : [])
}

function printAuthz(r: Record<string, unknown>): void {
  const label: Record<string, string> = {
    warm: 'decision, caller and name seen before (per call)',
    miss: 'decision, name never seen (merged matchers)',
    new_caller: 'first decision of a new caller identity',
    linear_scan: 'naive linear scan of every rule (for comparison)',
  }
  const rows = Object.entries(label).map(([k, text]) => [text, fmtStat(r[k] as Stat, 3)])
  rows.push(['compile the policy (ms)', fmtStat(r.compile_ms as Stat, 1)])
  print(table(`Authorization: one decision with ${String(r.rules)} rules (µs, median [min–max] of runs; target < 2 µs)`, ['figure', 'µs'], rows))
}

// ---------- metrics cost (bench/metrics-worker.ts, issue 12) ----------

async function metricsCost(args: Args): Promise<Record<string, unknown>> {
  const w = new Worker('./metrics-worker.ts')
  try {
    await w.ready()
    const r = await w.request('metrics', { quick: args.quick })
    return r.result as Record<string, unknown>
  } finally {
    await w.stop()
  }
}

function printMetricsCost(r: Record<string, unknown>): void {
  type Pair = { off_us: Stat; on_us: Stat; ratio_on_off: Stat; off_cpu_us: Stat; on_cpu_us: Stat; cpu_ratio_on_off: Stat; control_ratio: Stat; control_cpu_ratio: Stat }
  const row = (name: string, x: Pair): string[][] => [
    [`${name}: wall µs, metrics off / on`, `${fmtStat(x.off_us, 2)} / ${fmtStat(x.on_us, 2)}`],
    [`${name}: wall ratio on / off (control / off)`, `${fmtStat(x.ratio_on_off, 3)} (${fmtStat(x.control_ratio, 3)})`],
    [`${name}: CPU µs, metrics off / on`, `${fmtStat(x.off_cpu_us, 2)} / ${fmtStat(x.on_cpu_us, 2)}`],
    [`${name}: CPU ratio on / off, target ≤ 1.02 (control / off)`, `${fmtStat(x.cpu_ratio_on_off, 3)} (${fmtStat(x.control_cpu_ratio, 3)})`],
  ]
  print(
    table(`Metrics cost: same process, off / on / control (no metrics) taking turns (one handshake / 100 checks at a time), ${String(r.rounds)} rounds`, ['figure', 'median [min–max]'], [
      ...row('handshake, server time', r.handshake_server as Pair),
      ...row('request check (verifyRequest)', r.request_verify as Pair),
    ]),
  )
  const added = r.added_per_request as { added_ns: Stat; bare_insert_ns: Stat }
  const req = r.request_verify as Pair
  print(
    table('Metrics cost: work added to one request check, timed alone (alternating chunks)', ['figure', 'median [min–max]'], [
      ['bare in-memory nonce insert (ns)', fmtStat(added.bare_insert_ns, 1)],
      ['added: nonce store wrapper + observer calls (ns)', fmtStat(added.added_ns, 1)],
      ['added / request check CPU with metrics off (target ≤ 2%)', `${fmt((100 * added.added_ns.median) / 1000 / req.off_cpu_us.median, 2)} %`],
      ['one scrape, CPU µs (once per scrape interval, not per request)', fmtStat(r.scrape_cpu_us as Stat, 0)],
    ]),
  )
}

// ---------- main ----------

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const started = Date.now()
  const results: Record<string, unknown> = {
    meta: {
      date: new Date().toISOString(),
      node: process.version,
      openssl: process.versions.openssl,
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      loadavg_start: loadavg().map((x) => round(x, 2)),
      quick: args.quick,
      groups: [...args.only],
    },
  }
  print(`# mcp-pki-auth benchmarks — ${new Date().toISOString()} — node ${process.version}, ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}${args.quick ? ' (quick)' : ''}\n`)
  if (args.only.has('floor')) {
    progress('floor')
    const r = await micro('floor', args)
    results.floor = r
    printFloor(r as Record<string, Stat>)
  }
  if (args.only.has('inprocess')) {
    progress('in-process handshake')
    const r = await micro('inprocess', args)
    results.inprocess = r
    printInprocess(r)
  }
  if (args.only.has('session')) {
    progress('session check')
    const r = await micro('session', args)
    results.session = r
    printSession(r)
  }
  if (args.only.has('network')) {
    progress('network: servers and load in separate processes')
    const r = await network(args)
    results.network = r
    printNetwork(r)
  }
  if (args.only.has('memory')) {
    progress('memory and scale')
    const r = await memory(args)
    results.memory = r
    printMemory(r)
  }
  if (args.only.has('mcp')) {
    progress('MCP tools/call')
    const r = await mcp(args)
    results.mcp = r
    printMcp(r)
    progress('MCP tools/call: the floor of a proof check')
    // Three paths, as in the table above (as many paths between two calls of one path leave its
    // code as cold), then all five: what the header bytes and the check's shape cost on their own.
    const floor = await runFloor(args.quick ? 100 : 400, args.quick ? 2 : 4, ['plain', 'crypto', 'auth'])
    const steps = await runFloor(args.quick ? 100 : 400, args.quick ? 2 : 4)
    results.mcp_floor = { floor, steps }
    printMcpFloor(floor, steps)
  }
  if (args.only.has('sustained')) {
    const seconds = args.quick ? 20 : 600
    progress(`sustained default-config load: ${seconds} s`)
    const r = await runSustained(seconds, 8, progress)
    results.sustained = r
    printSustained(r)
  }
  if (args.only.has('workers')) {
    progress('--workers: 1 process vs 2 workers')
    const r = await runWorkersBench({ seconds: args.quick ? 5 : 15, clients: 8, rounds: args.quick ? 1 : 3 }, progress)
    results.workers = r
    printWorkers(r)
  }
  if (args.only.has('authz')) {
    progress('authorization decisions')
    const r = await authz(args)
    results.authz = r
    printAuthz(r)
  }
  if (args.only.has('metrics')) {
    progress('metrics cost (off vs on)')
    const r = await metricsCost(args)
    results.metrics = r
    printMetricsCost(r)
  }
  const meta = results.meta as Record<string, unknown>
  meta.loadavg_end = loadavg().map((x) => round(x, 2))
  meta.duration_s = round((Date.now() - started) / 1000, 1)
  writeFileSync(args.out, JSON.stringify(results, null, 2) + '\n')
  print(`\nload average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}; total ${fmt((Date.now() - started) / 1000, 0)} s; results in ${args.out}\n`)
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err)
  process.exit(1)
})
