/**
 * Where the server spends its time: runs the benchmark server (HTTP by default) under
 * `--cpu-prof`, drives it with the load worker, and prints the functions with the most self time.
 *
 *   node --import tsx bench/profile.ts [http|https|ws|cryptofloor] [--concurrency 10] [--seconds 5] [--top 30] [--by-category] [--client]
 * (--client profiles the load generator, i.e. the project's client, instead of the server;
 * cryptofloor is the network benchmark's floor, bench/handshake-floor.ts)
 * @module
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeCerts } from './certs.js'
import { fmt, table, Worker } from './lib.js'
import { generateKeyPair, privateKeySeed } from '../src/keys/key-pair.js'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
}

/** Self time per function (ms), largest first. */
export function selfTimes(p: Profile): { name: string; ms: number; share: number }[] {
  const total = p.samples.length
  const perSample = (p.endTime - p.startTime) / 1000 / Math.max(1, total)
  const byName = new Map<string, number>()
  for (const n of p.nodes) {
    const f = n.callFrame
    const file = f.url.replace(/^.*\/(node_modules|src|bench)\//, '$1/').replace(/^node:/, '')
    const name = `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim()
    byName.set(name, (byName.get(name) ?? 0) + (n.hitCount ?? 0))
  }
  const busy = [...byName.entries()].filter(([k]) => k !== '(idle)').reduce((s, [, v]) => s + v, 0)
  return [...byName.entries()]
    .filter(([k]) => k !== '(idle)')
    .map(([name, hits]) => ({ name, ms: hits * perSample, share: hits / Math.max(1, busy) }))
    .sort((a, b) => b.ms - a.ms)
}

/** Coarse bucket of a profile entry. */
export function categoryOf(name: string): string {
  if (/internal\/crypto\/(sig|keygen|diffiehellman|hkdf)/.test(name)) return 'crypto: ed25519/x25519/hkdf'
  if (/internal\/crypto\//.test(name)) return 'crypto: hash/aead/random/keys'
  if (/^\(garbage collector\)/.test(name)) return 'gc'
  if (/^\(program\)/.test(name)) return '(program: native, unattributed)'
  if (/ src\//.test(name)) return 'project code (src/)'
  if (/esm|loader|modules|tsx|node_modules\/(tsx|esbuild)/.test(name)) return 'module loading (startup)'
  if (/_http|http|net|stream|writev|tcp|Parser|parser|socket|headers?/i.test(name)) return 'node http/net'
  if (/node_modules\/ws/.test(name)) return 'ws library'
  return 'other js/runtime'
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2)
  const mode = (argv.find((a) => !a.startsWith('--') && !/^\d+$/.test(a)) ?? 'http') as 'http' | 'https' | 'ws' | 'cryptofloor'
  const opt = (name: string, d: number): number => {
    const i = argv.indexOf(`--${name}`)
    return i === -1 ? d : Number(argv[i + 1])
  }
  const dir = mkdtempSync(join(tmpdir(), 'mcp-pki-prof-'))
  try {
    const certs = makeCerts(dir)
    const server = generateKeyPair()
    const client = generateKeyPair()
    const clientSide = argv.includes('--client')
    const prof = ['--cpu-prof', '--cpu-prof-dir', dir]
    const srv = new Worker('./server-worker.ts', [], clientSide ? [] : prof)
    await srv.ready()
    const { port } = await srv.request('start', {
      mode,
      serverSeed: privateKeySeed(server.privateKey).toString('base64url'),
      clientPublicKey: client.publicKeyRaw.toString('base64url'),
      certs,
    })
    const load = new Worker('./load-worker.ts', [], clientSide ? prof : [])
    await load.ready()
    const target = mode === 'cryptofloor' ? {
      kind: 'cryptofloor',
      port,
      clientSeed: privateKeySeed(client.privateKey).toString('base64url'),
      serverPublicKey: server.publicKeyRaw.toString('base64url'),
    } : {
      kind: 'ours',
      transport: mode,
      url: mode === 'ws' ? `ws://127.0.0.1:${String(port)}/ws` : `${mode}://127.0.0.1:${String(port)}/auth`,
      clientSeed: privateKeySeed(client.privateKey).toString('base64url'),
      serverPublicKey: server.publicKeyRaw.toString('base64url'),
      ca: certs.ca,
    }
    const c0 = await srv.request('cpu')
    const r = await load.request('throughput', { target, concurrency: opt('concurrency', 10), durationMs: opt('seconds', 5) * 1000, warmupMs: 500 })
    const c1 = await srv.request('cpu')
    await load.stop()
    await srv.stop()
    const hs = Number(c1.handshakes) - Number(c0.handshakes)
    const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
    if (file === undefined) throw new Error('no profile written')
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile
    const rows = selfTimes(profile).slice(0, opt('top', 30))
    console.log(`${mode}: ${fmt(Number(r.rate), 0)} handshakes/s, server CPU ${fmt((Number(c1.cpuUs) - Number(c0.cpuUs)) / hs, 0)} µs per handshake (${hs} handshakes)`)
    const cats = new Map<string, number>()
    for (const x of selfTimes(profile)) cats.set(categoryOf(x.name), (cats.get(categoryOf(x.name)) ?? 0) + x.ms)
    const busy = [...cats.values()].reduce((a, b) => a + b, 0)
    console.log(
      table(
        `${clientSide ? 'Client (load generator)' : 'Server'} self time by category (ms; per handshake µs over the whole run incl. warmup)`,
        ['category', 'ms', 'share', 'µs/handshake'],
        [...cats.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, fmt(v, 0), `${((v / busy) * 100).toFixed(1)}%`, fmt((v * 1000) / Number(c1.handshakes), 0)]),
      ),
    )
    if (argv.includes('--by-category')) {
      for (const cat of cats.keys()) {
        const top = selfTimes(profile).filter((x) => categoryOf(x.name) === cat).slice(0, 12)
        console.log(table(cat, ['function', 'ms', 'µs/handshake'], top.map((x) => [x.name, fmt(x.ms, 0), fmt((x.ms * 1000) / Number(c1.handshakes), 1)])))
      }
    }
    console.log(table(`${clientSide ? 'Client' : 'Server'} self time by function (whole process lifetime)`, ['function', 'ms', 'share of busy'], rows.map((x) => [x.name, fmt(x.ms, 0), `${(x.share * 100).toFixed(1)}%`])))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (/profile\.[jt]s$/.test(process.argv[1] ?? '')) await main()
