/**
 * Smoke test of the benchmark runner: it runs, prints its tables and writes valid JSON with the
 * expected keys. Asserts no speed (this is not a timed test).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { benchCommand } from './bench-command.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, benchCommand('bench/run.ts', args), { cwd: ROOT, timeout: 120_000, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

function isStat(v: unknown): boolean {
  const s = v as { median?: unknown; min?: unknown; max?: unknown; runs?: unknown }
  return typeof s?.median === 'number' && typeof s.min === 'number' && typeof s.max === 'number' && Array.isArray(s.runs) && s.runs.length >= 3
}

test('bench/run.ts --quick --only floor,inprocess,session prints the tables and writes results JSON', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-smoke-'))
  try {
    const out = join(dir, 'results.json')
    const r = await run(['--quick', '--only', 'floor,inprocess,session', '--out', out])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /### Floor: single operations/)
    assert.match(r.stdout, /\| ed25519_sign +\|/)
    assert.match(r.stdout, /### Our handshake in-process/)
    assert.match(r.stdout, /ratio server CPU \/ core crypto/)
    assert.match(r.stdout, /### Session check per request/)
    const json = JSON.parse(await readFile(out, 'utf8')) as Record<string, Record<string, unknown>>
    assert.deepEqual(Object.keys(json).sort(), ['floor', 'inprocess', 'meta', 'session'])
    assert.equal(json.meta!.quick, true)
    assert.deepEqual(json.meta!.groups, ['floor', 'inprocess', 'session'])
    for (const k of ['ed25519_sign', 'ed25519_verify', 'ed25519_import_pem', 'ed25519_import_der', 'ed25519_import_jwk', 'x25519_keygen', 'x25519_shared_secret', 'hkdf_sha256', 'hmac_sha256', 'aes_gcm_seal', 'aes_gcm_open']) {
      assert.ok(isStat(json.floor![k]), `floor.${k} is a stat`)
      assert.ok((json.floor![k] as { median: number }).median > 0, `floor.${k} > 0`)
    }
    for (const k of ['handshake_us', 'server_cpu_us', 'server_crypto_core_us', 'ratio_cpu_to_core_crypto']) assert.ok(isStat(json.inprocess![k]), `inprocess.${k}`)
    assert.ok(isStat(json.session!.verify_us))
    const breakdown = json.session!.breakdown_us as Record<string, unknown>
    for (const k of ['token_decode_uncached', 'token_decode_cached', 'proof_hmac', 'nonce_insert']) assert.ok(isStat(breakdown[k]), `session.breakdown_us.${k}`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('bench/run.ts refuses an unknown group', async () => {
  const r = await run(['--only', 'nope'])
  assert.notEqual(r.code, 0)
  assert.match(r.stderr, /unknown group nope/)
})
