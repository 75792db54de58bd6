/**
 * Smoke test of the `metrics` bench group (issue 12): it runs off and on alternately and prints
 * the ratios. Asserts no speed (figures on a shared machine are for bench/, not for tests).
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

test('bench/run.ts --quick --only metrics prints off/on figures and ratios and writes them to JSON', { timeout: 180_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-metrics-'))
  try {
    const out = join(dir, 'results.json')
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, benchCommand('bench/run.ts', ['--quick', '--only', 'metrics', '--out', out]), { cwd: ROOT, timeout: 170_000 }, (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : 1, stdout, stderr }),
      )
    })
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /### Metrics cost: same process, off \/ on \/ control/)
    assert.match(r.stdout, /one scrape, CPU µs/)
    assert.match(r.stdout, /handshake, server time: CPU ratio on \/ off, target ≤ 1\.02 \(control \/ off\)/)
    assert.match(r.stdout, /request check \(verifyRequest\): CPU ratio on \/ off/)
    assert.match(r.stdout, /added \/ request check CPU with metrics off \(target ≤ 2%\) +\| +-?[\d.]+ %/)
    const json = JSON.parse(await readFile(out, 'utf8')) as { metrics: Record<string, Record<string, { median: number; runs: number[] }>> }
    for (const group of ['handshake_server', 'request_verify']) {
      for (const figure of ['off_us', 'on_us', 'ratio_on_off', 'off_cpu_us', 'on_cpu_us', 'cpu_ratio_on_off', 'control_ratio', 'control_cpu_ratio']) {
        const s = json.metrics[group]![figure]!
        assert.ok(Number.isFinite(s.median) && s.median > 0, `${group}.${figure}`)
        assert.equal(s.runs.length, 6)
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
