import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { updateAllowlistFile } from '../../src/allowlist/allowlist-file.js'

const BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-auth-test.js')
let dir: string
let sb: Sandbox
let server: RunningServer

before(async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  dir = await mkdtemp(join(tmpdir(), 'mcp-auth-test-cli-'))
  sb = await createSandbox(dir, { server: { audit: { enabled: false }, auth: { rate_limit: { per_address: 0, per_key: 0 } } } })
  server = await startServerFromConfig(await loadConfig(sb.serverConfigPath, { env: {} }), { audit: new AuditLogger({ enabled: false }) })
})
after(async () => {
  await server.close()
  await rm(dir, { recursive: true, force: true })
})

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

// async spawn: the server lives in this process and must keep answering
function run(args: string[]): Promise<Run> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env, MCP_DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', (status) => resolveRun({ status, stdout, stderr }))
  })
}

test('one run over HTTP prints who the server is, its allowlist metadata and the session expiry', async () => {
  const r = await run(['--config', sb.clientConfigPath, '--server-url', server.authUrl, '--timeout', '5'])
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /✓ mutual authentication succeeded over http/)
  assert.match(r.stdout, new RegExp(`server key:\\s+${sb.serverKey.fingerprint}`))
  assert.match(r.stdout, /server info: \{"role":"mcp_server","endpoint":"127.0.0.1"\}/)
  assert.match(r.stdout, new RegExp(`client key:\\s+${sb.clientKey.fingerprint}`))
  assert.match(r.stdout, /session:\s+expires \d{4}-\d\d-\d\dT.* \(in 1[45]m \d+s\)/)
})

test('one run over WebSocket with --format json', async () => {
  const r = await run(['--config', sb.clientConfigPath, '--server-url', server.wsUrl, '--transport', 'websocket', '--format', 'json'])
  assert.equal(r.status, 0, r.stderr)
  const j = JSON.parse(r.stdout) as { success: boolean; transport: string; server: { fingerprint: string; metadata: unknown }; session: { expires_in_s: number } }
  assert.equal(j.success, true)
  assert.equal(j.transport, 'websocket')
  assert.equal(j.server.fingerprint, sb.serverKey.fingerprint)
  assert.deepEqual(j.server.metadata, { role: 'mcp_server', endpoint: '127.0.0.1' })
  assert.ok(j.session.expires_in_s > 800 && j.session.expires_in_s <= 900)
})

test('a load run reports successes, throughput, percentiles and a histogram', async () => {
  const r = await run(['--config', sb.clientConfigPath, '--server-url', server.authUrl, '--count', '40', '--concurrent', '4'])
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stdout, /40 total, 4 concurrent/)
  assert.match(r.stdout, /succeeded:\s+40/)
  assert.match(r.stdout, /failed:\s+0/)
  assert.match(r.stdout, /throughput:\s+[\d.]+ handshakes\/s/)
  assert.match(r.stdout, /p50 [\d.]+\s+p90 [\d.]+\s+p99 [\d.]+\s+max [\d.]+/)
  assert.match(r.stdout, /histogram:\n(\s+[\d.]+ – [\d.]+\s+ms │█* \d+\n)+/)
  const json = await run(['--config', sb.clientConfigPath, '--server-url', server.authUrl, '--count', '10', '--concurrent', '3', '--format', 'json'])
  const stats = JSON.parse(json.stdout) as { successes: number; failures: number; latency_ms: { p50: number; max: number } }
  assert.equal(stats.successes, 10)
  assert.equal(stats.failures, 0)
  assert.ok(stats.latency_ms.p50 > 0 && stats.latency_ms.max >= stats.latency_ms.p50)
})

test('failures exit 1 with the code and an actionable hint', async () => {
  // the client key is not on the server allowlist
  const other = await mkdtemp(join(dir, 'other-'))
  const stranger = await createSandbox(other)
  await updateAllowlistFile(stranger.clientAllowlistPath, (l) => {
    l.add({ publicKeyRaw: sb.serverKey.publicKeyRaw })
  })
  const unknown = await run(['--config', stranger.clientConfigPath, '--server-url', server.authUrl])
  assert.equal(unknown.status, 1)
  assert.match(unknown.stdout, /✗ mutual authentication failed over http: authentication_failed/)
  // Issue 11.5: the wire folds unknown, expired and revoked together; the hint names all three and the audit log.
  assert.match(unknown.stderr, new RegExp(`hint: the server refused this client key, and on the wire it does not say why: the key is not on its allowlist \\(the operator adds it: mcp-allowlist add --config <server config> --key-file ${stranger.clientPublicKeyPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\), or its allowlist entry has expired .*or the key is revoked .*audit log records which`))

  // the server key is not on the client allowlist (and no terminal for TOFU)
  const untrusting = await mkdtemp(join(dir, 'untrusting-'))
  const u = await createSandbox(untrusting)
  await updateAllowlistFile(sb.serverAllowlistPath, (l) => {
    l.add({ publicKeyRaw: u.clientKey.publicKeyRaw })
  })
  await server.configured.reloadAllowlist()
  const unknownServer = await run(['--config', u.clientConfigPath, '--server-url', server.authUrl, '--format', 'json'])
  assert.equal(unknownServer.status, 1)
  const j = JSON.parse(unknownServer.stdout) as { success: boolean; error: { code: string }; hint: string }
  assert.equal(j.error.code, 'server_key_unknown')
  assert.match(j.hint, new RegExp(`mcp-allowlist add --config .* --fingerprint ${sb.serverKey.fingerprint}`))

  // nothing listening
  const down = await run(['--config', sb.clientConfigPath, '--server-url', 'http://127.0.0.1:9/auth', '--timeout', '2'])
  assert.equal(down.status, 1)
  assert.match(down.stdout, /failed over http: transport_error/)
  assert.match(down.stderr, /hint: is the server running at http:\/\/127\.0\.0\.1:9\/auth\?/)

  // Issue 11.5: https:// against a plain http server is not a bare EPROTO.
  const tlsToHttp = await run(['--config', sb.clientConfigPath, '--server-url', server.authUrl.replace('http:', 'https:'), '--timeout', '5'])
  assert.equal(tlsToHttp.status, 1)
  assert.match(tlsToHttp.stderr, /^error: TLS connection to https:\/\/127\.0\.0\.1:\d+\/auth failed: EPROTO: the server did not answer in TLS: it looks like a plain http server/m)
  assert.match(tlsToHttp.stderr, /^hint: the server at https:.* speaks plain http on that port: use http:\/\/127\.0\.0\.1:\d+\/auth/m)
  assert.doesNotMatch(tlsToHttp.stderr, /is the server running/)

  // Issue 11.6: pointed at the MCP endpoint instead of the handshake endpoint.
  const atMcp = await run(['--config', sb.clientConfigPath, '--server-url', server.authUrl.replace(/\/auth$/, '/mcp'), '--timeout', '5'])
  assert.equal(atMcp.status, 1)
  assert.match(atMcp.stderr, /^hint: http:\/\/127\.0\.0\.1:\d+\/mcp did not answer with a handshake message: this is the MCP endpoint \(or another path\), not the handshake endpoint; use http:\/\/127\.0\.0\.1:\d+\/auth here/m)

  // a load run with failures reports them by code and exits 1
  const load = await run(['--config', stranger.clientConfigPath, '--server-url', server.authUrl, '--count', '5', '--concurrent', '2'])
  assert.equal(load.status, 1)
  assert.match(load.stdout, /failed:\s+5/)
  assert.match(load.stdout, /authentication_failed: 5/)
  assert.match(load.stdout, /hint: the server refused this client key/)
})

test('usage errors exit 2', async () => {
  const r = await run(['--server-url', server.authUrl])
  assert.equal(r.status, 2)
  assert.match(r.stderr, /--config/)
  const bad = await run(['--config', sb.clientConfigPath, '--server-url', server.authUrl, '--count', '0'])
  assert.equal(bad.status, 2)
})
