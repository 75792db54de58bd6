/**
 * Issue 12: `mcp-pki-server --metrics-port` serves Prometheus `/metrics` on a listener of its
 * own (printed at start-up) and never on the public port; `/ready` is on the public port.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createSandbox } from '../../src/server/sandbox.js'
import { promtoolCheckMetrics } from '../metrics/prometheus-helpers.js'

const BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-pki-server.js')
const AUTH_TEST = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-auth-test.js')
const dirs: string[] = []
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

test('mcp-pki-server --metrics-port 0: /metrics on its own printed URL, counts a handshake; not on the public port', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-server-metrics-'))
  dirs.push(dir)
  const sb = await createSandbox(dir, { server: { audit: { enabled: false } } })
  const child = spawn(process.execPath, [BIN, '--config', sb.serverConfigPath, '--metrics-port', '0'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  try {
    const [authUrl, metricsUrl] = await new Promise<[string, string]>((resolveUrls, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening/metrics lines; stderr: ${stderr}`)), 10_000)
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString()
        const a = /listening on (http:\/\/127\.0\.0\.1:\d+\/auth)/.exec(stdout)
        const m = /^metrics: (http:\/\/127\.0\.0\.1:\d+\/metrics)$/m.exec(stdout)
        if (a && m) {
          clearTimeout(timer)
          resolveUrls([a[1]!, m[1]!])
        }
      })
      child.once('exit', () => reject(new Error(`server exited early; stderr: ${stderr}`)))
    })
    assert.notEqual(new URL(metricsUrl).port, new URL(authUrl).port)
    const r = spawnSync(process.execPath, [AUTH_TEST, '--config', sb.clientConfigPath, '--server-url', authUrl, '--format', 'json'], { cwd: dir, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    const text = await (await fetch(metricsUrl)).text()
    assert.match(text, /^mcp_pki_handshakes_total\{result="success",code="ok"\} 1$/m)
    assert.match(text, /^mcp_pki_allowlist_entries 1$/m)
    assert.equal(promtoolCheckMetrics(text).status, 0)
    assert.equal((await fetch(authUrl.replace(/\/auth$/, '/metrics'))).status, 404)
    const ready = await fetch(authUrl.replace(/\/auth$/, '/ready'))
    assert.equal(ready.status, 200)
    assert.deepEqual(await ready.json(), { status: 'ready', checks: { allowlist: 'ok' } })
  } finally {
    child.kill('SIGTERM')
  }
  assert.equal(await exited, 0, stderr)
})

test('mcp-pki-server: --metrics-port equal to the public port, or not a port, is a usage error (exit 2)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-server-metrics-'))
  dirs.push(dir)
  const sb = await createSandbox(dir, { server: { audit: { enabled: false } } })
  const same = spawnSync(process.execPath, [BIN, '--config', sb.serverConfigPath, '--port', '18443', '--metrics-port', '18443'], { cwd: dir, encoding: 'utf8', timeout: 10_000 })
  assert.equal(same.status, 2, same.stderr)
  assert.match(same.stderr, /--metrics-port must differ from the public port 18443/)
  const bad = spawnSync(process.execPath, [BIN, '--config', sb.serverConfigPath, '--metrics-port', 'ninety'], { cwd: dir, encoding: 'utf8', timeout: 10_000 })
  assert.equal(bad.status, 2, bad.stderr)
  assert.match(bad.stderr, /--metrics-port must be 0\.\.65535, got "ninety"/)
})
