/**
 * Config safety: the operator's keys, allowlists and configuration are refused (or warned about)
 * when they are weak or exposed, and the CLIs refuse inputs that would write outside their folder
 * or put private key material where a public key belongs. CLI tests spawn the built bins (`make
 * test` builds).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig, parseConfig } from '../../src/config/load-config.js'
import { createAuthServiceFromConfig } from '../../src/server/from-config.js'
import { createSandbox } from '../../src/server/sandbox.js'
import { onCleanup } from './helpers/cleanup.js'

const DIST_CLI = resolve(import.meta.dirname, '..', '..', 'dist', 'bin')

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mcp-security-cfg-'))
  onCleanup(() => rm(d, { recursive: true, force: true }))
  return d
}

function cli(bin: string, args: string[], cwd: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [join(DIST_CLI, `${bin}.js`), ...args], { cwd, encoding: 'utf8', timeout: 20_000 })
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

// From the red-team, configuration (finding, fixed).
test(
  'a degenerate fleet ticket key (32 zero bytes) is refused or warned about',
  () => {
    const yaml = `auth:\n  ticket_key: "${'A'.repeat(43)}"\n`
    let warnings: string[] = []
    let refused = false
    try {
      warnings = parseConfig(yaml, { env: {} }).warnings
    } catch {
      refused = true
    }
    assert.ok(refused || warnings.some((w) => /ticket_key/.test(w)), `accepted without a word: ${JSON.stringify(warnings)}`)
  },
)

// From the red-team, configuration (finding, fixed).
test(
  'an allowlist file that anyone on the host can write is refused or warned about (as ssh StrictModes does)',
  async () => {
    const dir = await tempDir()
    const sb = await createSandbox(dir, { server: { audit: { enabled: false } } })
    await chmod(sb.serverAllowlistPath, 0o666)
    const config = await loadConfig(sb.serverConfigPath, { env: {} })
    const events: string[] = []
    let refused = false
    try {
      const c = await createAuthServiceFromConfig(config, {
        audit: new AuditLogger({ enabled: false }),
        onEvent: (event, fields, level) => {
          if (level === 'WARN' || level === 'ERROR') events.push(`${event} ${JSON.stringify(fields)}`)
        },
      })
      await c.close()
    } catch {
      refused = true
    }
    const { warnings } = parseConfig(await readFile(sb.serverConfigPath, 'utf8'), { env: {}, baseDir: dir })
    const said = [...events, ...warnings].some((t) => /writ|permission|mode/i.test(t))
    assert.ok(refused || said, `loaded silently: ${JSON.stringify([...events, ...warnings])}`)
  },
)

// From the red-team, configuration (held).
test('mcp-keygen --key-name refuses path traversal and separators, and writes nothing', async () => {
  const dir = await tempDir()
  for (const name of ['../escaped', '..', 'a/b', 'a\\b', '/tmp/abs', '', '-rf']) {
    const r = cli('mcp-keygen', ['--output-dir', './k', '--key-name', name], dir)
    assert.notEqual(r.status, 0, name)
    assert.match(r.out, /invalid --key-name/, name)
  }
  assert.deepEqual(await readdir(dir), [])
})

// From the red-team, configuration (held).
test('mcp-allowlist refuses an ambiguous fingerprint prefix and a private key given as --key-file', async () => {
  const dir = await tempDir()
  const al = join(dir, 'al.json')
  assert.equal(cli('mcp-allowlist', ['add', '--allowlist', al, '--fingerprint', `aaaaaaaa${'b'.repeat(56)}`], dir).status, 0)
  assert.equal(cli('mcp-allowlist', ['add', '--allowlist', al, '--fingerprint', `aaaaaaaa${'c'.repeat(56)}`], dir).status, 0)
  const amb = cli('mcp-allowlist', ['remove', '--allowlist', al, '--fingerprint', 'aaaaaaaa'], dir)
  assert.notEqual(amb.status, 0)
  assert.match(amb.out, /ambiguous/)
  assert.equal((await readFile(al, 'utf8')).match(/"fingerprint":/g)?.length, 2, 'nothing removed')
  // A private key passed where a public key belongs: refused, and no key material lands in the file.
  assert.equal(cli('mcp-keygen', ['--output-dir', './k', '--key-name', 'x'], dir).status, 0)
  const before = await readFile(al, 'utf8')
  const priv = cli('mcp-allowlist', ['add', '--allowlist', al, '--key-file', 'k/x_private.pem'], dir)
  assert.notEqual(priv.status, 0)
  assert.match(priv.out, /private key/)
  assert.equal(await readFile(al, 'utf8'), before)
})

// From the red-team, configuration (held).
test('a private key readable by group or others is refused by the server with the chmod fix', async () => {
  const dir = await tempDir()
  const sb = await createSandbox(dir, { server: { audit: { enabled: false } } })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  for (const mode of [0o640, 0o604, 0o644]) {
    await chmod(config.keys.private_key_path, mode)
    await assert.rejects(createAuthServiceFromConfig(config, { audit: new AuditLogger({ enabled: false }) }), (err: Error) => /too open/.test(err.message) && /chmod 600/.test(err.message) && !/PRIVATE KEY-----/.test(err.message))
  }
})
