import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createSandbox } from '../../src/server/sandbox.js'

const BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-pki-server.js')
const AUTH_TEST = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-auth-test.js')
const dirs: string[] = []
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

/** A started mcp-pki-server: its handshake URL from the "listening on" line, and its output so far. */
interface StartedServer {
  child: ChildProcess
  url: string
  out: { stdout: string; stderr: string }
  exited: Promise<number | null>
}

function startServer(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<StartedServer> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const out = { stdout: '', stderr: '' }
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()))
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
  return new Promise<StartedServer>((resolveStarted, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening on" line; stderr: ${out.stderr}`)), 10_000)
    child.stdout.on('data', (d: Buffer) => {
      out.stdout += d.toString()
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+\/auth)/.exec(out.stdout)
      if (m) {
        clearTimeout(timer)
        resolveStarted({ child, url: m[1]!, out, exited })
      }
    })
    child.once('exit', () => reject(new Error(`server exited early; stderr: ${out.stderr}`)))
  })
}

test('mcp-pki-server starts, answers /health and handshakes, logs audit events to stderr, exits 0 on SIGTERM', async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  const dir = await mkdtemp(join(tmpdir(), 'mcp-server-cli-'))
  dirs.push(dir)
  const sb = await createSandbox(dir, { server: { audit: { log_file: null } } })
  const { child, url, out, exited } = await startServer(['--config', sb.serverConfigPath], dir, { ...process.env, MCP_DEBUG: '' })
  try {
    assert.match(out.stdout, new RegExp(`server key fingerprint: ${sb.serverKey.fingerprint}`))
    const health = await fetch(url.replace('/auth', '/health'))
    assert.equal(health.status, 200)
    assert.equal(((await health.json()) as { fingerprint: string }).fingerprint, sb.serverKey.fingerprint)

    const r = spawnSync(process.execPath, [AUTH_TEST, '--config', sb.clientConfigPath, '--server-url', url, '--format', 'json'], { cwd: dir, encoding: 'utf8' })
    assert.equal(r.status, 0, r.stderr)
    assert.equal((JSON.parse(r.stdout) as { success: boolean }).success, true)
    // the audit line of that handshake reached out.stderr
    await new Promise((res) => setTimeout(res, 200))
    const success = out.stderr.split('\n').find((l) => l.includes('"handshake.success"'))
    assert.ok(success, out.stderr)
    assert.equal((JSON.parse(success) as { client_fingerprint: string }).client_fingerprint, sb.clientKey.fingerprint)
    assert.ok(!/session_token|BEGIN PRIVATE KEY/.test(out.stderr))
  } finally {
    child.kill('SIGTERM')
  }
  assert.equal(await exited, 0, out.stderr)
  assert.match(out.stderr, /SIGTERM: shutting down/)
  assert.match(out.stderr, /"server\.stop"/)
})

test('mcp-pki-server writes JSON audit to the configured file and one summary line per event to stderr', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-server-cli-'))
  dirs.push(dir)
  const sb = await createSandbox(dir)
  const { child, out, exited } = await startServer(['--config', sb.serverConfigPath], dir)
  child.kill('SIGTERM')
  assert.equal(await exited, 0, out.stderr)
  assert.match(out.stderr, /INFO {2}server\.start .*server_fingerprint=[0-9a-f]{64}/)
  const lines = (await readFile(join(dir, 'logs/server_audit.jsonl'), 'utf8')).trim().split('\n')
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { event: string }).event),
    ['server.start', 'server.stop'],
  )
})

test('mcp-pki-server: missing --config is a usage error (exit 2); a broken config exits 1 naming the problem', async () => {
  const r = spawnSync(process.execPath, [BIN], { encoding: 'utf8' })
  assert.equal(r.status, 2)
  assert.match(r.stderr, /--config/)
  const dir = await mkdtemp(join(tmpdir(), 'mcp-server-cli-'))
  dirs.push(dir)
  const { writeFile } = await import('node:fs/promises')
  await writeFile(join(dir, 'bad.yml'), 'transport:\n  type: "https"\n')
  const bad = spawnSync(process.execPath, [BIN, '--config', join(dir, 'bad.yml')], { encoding: 'utf8' })
  assert.equal(bad.status, 1)
  assert.match(bad.stderr, /transport\.ssl\.cert_file/)
})

test('mcp-pki-server with keys.agent: serves with the key the ssh-agent holds (no private key file); without SSH_AUTH_SOCK it exits 1 naming the fix', async () => {
  const { rm: remove, mkdir } = await import('node:fs/promises')
  const { writeOpenSshPrivateKeyFile } = await import('../../src/keys/key-file.js')
  const { startSshAgent, sshAdd } = await import('../helpers/openssh.js')
  const dir = await mkdtemp(join(tmpdir(), 'mcp-server-cli-agent-'))
  dirs.push(dir)
  const sb = await createSandbox(dir, { server: { keys: { agent: true } } })
  await writeOpenSshPrivateKeyFile(join(dir, 'keys/server_ssh'), sb.serverKey.privateKey)
  await remove(join(dir, 'keys/server_private.pem'))
  await mkdir(join(dir, 'agent'), { mode: 0o700 })
  const agent = await startSshAgent(join(dir, 'agent'))
  try {
    assert.equal((await sshAdd(agent, [join(dir, 'keys/server_ssh')])).code, 0)
    const env: NodeJS.ProcessEnv = { ...process.env, MCP_DEBUG: '' }
    delete env.SSH_AUTH_SOCK
    const noAgent = spawnSync(process.execPath, [BIN, '--config', sb.serverConfigPath, '--port', '0'], { cwd: dir, env, encoding: 'utf8' })
    assert.equal(noAgent.status, 1)
    assert.match(noAgent.stderr, /SSH_AUTH_SOCK is not set.*ssh-add/s)

    const { child, url, out, exited } = await startServer(['--config', sb.serverConfigPath, '--port', '0'], dir, { ...env, SSH_AUTH_SOCK: agent.socket })
    try {
      assert.match(out.stdout, new RegExp(`server key fingerprint: ${sb.serverKey.fingerprint}`))
      const r = spawnSync(process.execPath, [AUTH_TEST, '--config', sb.clientConfigPath, '--server-url', url, '--format', 'json'], { cwd: dir, encoding: 'utf8' })
      assert.equal(r.status, 0, r.stderr)
      assert.equal((JSON.parse(r.stdout) as { success: boolean }).success, true)
    } finally {
      child.kill('SIGTERM')
    }
    assert.equal(await exited, 0, out.stderr)
  } finally {
    await agent.stop()
  }
})
