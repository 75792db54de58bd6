import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Allowlist } from '../../src/allowlist/allowlist.js'
import { loadAllowlistFile, updateAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { fingerprintOf, rawPublicKey } from '../../src/keys/key-pair.js'

const DIST = resolve(import.meta.dirname, '..', '..', 'dist')
const BIN = join(DIST, 'bin', 'mcp-allowlist.js')
const KEYGEN = join(DIST, 'bin', 'mcp-keygen.js')
const LEGACY = resolve(import.meta.dirname, '..', 'fixtures', 'allowlist', 'python-legacy.json')

// Step 3 of the product description, as written.
const SERVER_CONFIG = `keys:
  private_key_path: "./keys/server_private.pem"
  public_key_path: "./keys/server_public.pem"

acl:
  allowlist_path: "./keys/server_allowlist.json"

auth:
  timestamp_tolerance: 300  # 5 minutes
  nonce_cache_size: 10000

audit:
  enabled: true
  log_file: "./logs/server_audit.jsonl"
  log_level: "INFO"

transport:
  type: "http"
  host: "0.0.0.0"
  port: 8443
  ssl:
    cert_file: "./certs/server.crt"
    key_file: "./certs/server.key"
`
const CLIENT_CONFIG = SERVER_CONFIG.replaceAll('server_private', 'client_private')
  .replaceAll('server_public', 'client_public')
  .replace('server_allowlist.json', 'client_allowlist.json')

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

let root: string
let binDir: string

before(async () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  root = await mkdtemp(join(tmpdir(), 'mcp-allowlist-cli-'))
  // `mcp-allowlist` / `mcp-keygen` on PATH, so the documented commands run exactly as written.
  binDir = join(root, 'bin')
  await mkdir(binDir)
  for (const [name, target] of [['mcp-allowlist', BIN], ['mcp-keygen', KEYGEN]] as const) {
    await writeFile(join(binDir, name), `#!/bin/sh\nexec "${process.execPath}" "${target}" "$@"\n`)
    await chmod(join(binDir, name), 0o755)
  }
})
after(async () => {
  await rm(root, { recursive: true, force: true })
})

async function freshDir(name: string): Promise<string> {
  const dir = join(root, name)
  await mkdir(dir)
  await writeFile(join(dir, 'server_config.yml'), SERVER_CONFIG)
  await writeFile(join(dir, 'client_config.yml'), CLIENT_CONFIG)
  return dir
}

/** Runs a shell snippet (pasted documentation) in `dir`. */
function sh(dir: string, script: string): Run {
  const r = spawnSync('sh', ['-c', script], {
    cwd: dir,
    env: { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ''}`, MCP_DEBUG: '', MCP_ALLOWLIST_PATH: '' },
    encoding: 'utf8',
  })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function cli(dir: string, args: string[]): Run {
  const env: NodeJS.ProcessEnv = { ...process.env, MCP_DEBUG: '' }
  delete env.MCP_ALLOWLIST_PATH
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: dir, env, encoding: 'utf8' })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function ok(r: Run): Run {
  assert.equal(r.status, 0, `exit 0 expected; stderr: ${r.stderr}`)
  return r
}

function failed(r: Run, code: number, message: RegExp): void {
  assert.equal(r.status, code, `exit ${code} expected; stdout: ${r.stdout} stderr: ${r.stderr}`)
  assert.match(r.stderr, /^error: /)
  assert.match(r.stderr, message)
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace')
}

function writeKey(path: string): string {
  const { publicKey } = generateKeyPairSync('ed25519')
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, publicKey.export({ type: 'spki', format: 'pem' }) as string)
  return fingerprintOf(rawPublicKey(publicKey))
}

async function fileEntries(path: string): Promise<Record<string, { metadata: Record<string, unknown>; public_key: string | null }>> {
  const json = JSON.parse(await readFile(path, 'utf8')) as { version: number; keys: Record<string, { metadata: Record<string, unknown>; public_key: string | null }> }
  assert.equal(json.version, 1)
  return json.keys
}

describe('documented examples, pasted as written', () => {
  test('Quick Start steps 1–2: keygen, then add each side\'s key to the other\'s allowlist', async () => {
    const dir = await freshDir('quickstart')
    ok(sh(dir, `
# Generate server key pair
mcp-keygen --output-dir ./keys --key-name server

# Generate client key pair  
mcp-keygen --output-dir ./keys --key-name client
`))
    const r = ok(sh(dir, `
# Add client's public key to server allowlist
mcp-allowlist add --config server_config.yml \\
  --key-file ./keys/client_public.pem \\
  --metadata '{"role": "trusted_client", "org": "example_org"}'

# Add server's public key to client allowlist
mcp-allowlist add --config client_config.yml \\
  --key-file ./keys/server_public.pem \\
  --metadata '{"role": "mcp_server", "endpoint": "api.example.com"}'
`))
    assert.match(r.stdout, /^added [0-9a-f]{64} \(role trusted_client\)\nadded [0-9a-f]{64} \(role mcp_server\)\n$/)
    assert.equal(r.stderr, '', 'no expiry warning for entries without expires')
    const server = await fileEntries(join(dir, 'keys', 'server_allowlist.json'))
    const client = await fileEntries(join(dir, 'keys', 'client_allowlist.json'))
    const [serverEntry] = Object.values(server)
    const [clientEntry] = Object.values(client)
    assert.deepEqual(serverEntry?.metadata, { role: 'trusted_client', org: 'example_org' })
    assert.deepEqual(clientEntry?.metadata, { role: 'mcp_server', endpoint: 'api.example.com' })
    assert.ok(serverEntry?.public_key)
  })

  test('Allowlist Management section: add, list, remove, export/import, stats', async () => {
    const dir = await freshDir('management')
    const clientFp = writeKey(join(dir, 'keys', 'client_public.pem'))

    // Add key with metadata
    const add = ok(sh(dir, `
# Add key with metadata
mcp-allowlist add \\
  --config server_config.yml \\
  --key-file ./keys/client_public.pem \\
  --metadata '{"role": "api_client", "org": "example", "expires": "2024-12-31"}'
`))
    assert.equal(add.stdout, `added ${clientFp} (role api_client)\n`)
    // Issue 11.8: the example's date is past, so the entry cannot authenticate: warned, not silent.
    assert.match(add.stderr, /^warning: this entry expired on 2024-12-31: the key is on the allowlist but cannot authenticate; .*--replace/m)

    // Add key by fingerprint: the placeholder is not a fingerprint, so it is refused …
    const byFp = `
# Add key by fingerprint
mcp-allowlist add \\
  --config server_config.yml \\
  --fingerprint "a1b2c3d4..." \\
  --metadata '{"role": "backup_server"}'
`
    failed(sh(dir, byFp), 1, /--fingerprint must be the full 64-hex-character SHA-256 fingerprint, got "a1b2c3d4\.\.\."/)
    // … and with a real fingerprint in its place it works.
    const backupFp = 'a1b2c3d4' + 'e'.repeat(56)
    assert.equal(ok(sh(dir, byFp.replace('a1b2c3d4...', backupFp))).stdout, `added ${backupFp} (role backup_server) [fingerprint only]\n`)

    // List all keys
    const list = ok(sh(dir, `
# List all keys
mcp-allowlist list --config server_config.yml
`)).stdout
    const lines = list.trimEnd().split('\n')
    assert.match(lines[0]!, /^FINGERPRINT\s+ROLE\s+DESCRIPTION\s+ADDED\s+EXPIRES\s+STATUS$/)
    const clientRow = lines.find((l) => l.startsWith(clientFp.slice(0, 16) + '…'))
    assert.ok(clientRow, list)
    assert.match(clientRow, /api_client .*2024-12-31\s+EXPIRED$/)
    assert.match(lines.find((l) => l.startsWith('a1b2c3d4eeeeeeee…')) ?? '', /backup_server .*fingerprint-only$/)
    assert.match(lines.at(-1)!, /^2 keys in .*server_allowlist\.json$/)

    // List with specific format
    const withMeta = ok(sh(dir, `
# List with specific format
mcp-allowlist list \\
  --config server_config.yml \\
  --format table \\
  --show-metadata
`)).stdout
    assert.match(withMeta, /METADATA/)
    assert.match(withMeta, /\{"role":"api_client","org":"example","expires":"2024-12-31"\}/)

    // Filter by metadata
    const filtered = ok(sh(dir, `
# Filter by metadata
mcp-allowlist list \\
  --config server_config.yml \\
  --filter-role "api_client"
`)).stdout
    assert.match(filtered, new RegExp(clientFp.slice(0, 16)))
    assert.doesNotMatch(filtered, /backup_server/)

    // Export allowlist (before removing anything)
    const exp = ok(sh(dir, `
# Export allowlist
mcp-allowlist export \\
  --config server_config.yml \\
  --output ./backups/allowlist_backup.json
`))
    assert.match(exp.stdout, /^exported 2 keys to \.\/backups\/allowlist_backup\.json$/m)
    assert.equal(Object.keys(await fileEntries(join(dir, 'backups', 'allowlist_backup.json'))).length, 2)

    // Remove by fingerprint: the placeholder matches nothing → error naming it, exit 1.
    const removeOne = `
# Remove by fingerprint
mcp-allowlist remove \\
  --config server_config.yml \\
  --fingerprint "a1b2c3d4..."
`
    // "a1b2c3d4..." is a prefix of the backup entry we added: it is removed.
    assert.equal(ok(sh(dir, removeOne)).stdout, `removed ${backupFp}\n`)
    failed(sh(dir, removeOne), 1, /not on the allowlist .*: a1b2c3d4\.\.\. \(nothing removed\)/)

    // Remove multiple keys: one unknown → nothing removed.
    const removeTwo = `
# Remove multiple keys
mcp-allowlist remove \\
  --config server_config.yml \\
  --fingerprint "a1b2c3d4..." "e5f6g7h8..."
`
    failed(sh(dir, removeTwo), 1, /a1b2c3d4\.\.\., e5f6g7h8\.\.\. \(nothing removed\)/)
    assert.equal(Object.keys(await fileEntries(join(dir, 'keys', 'server_allowlist.json'))).length, 1)

    // Import allowlist (merges with existing)
    const imp = ok(sh(dir, `
# Import allowlist (merges with existing)
mcp-allowlist import \\
  --config server_config.yml \\
  --input ./backups/allowlist_backup.json \\
  --merge
`))
    assert.match(imp.stdout, /imported 2 keys .*\(added 1, skipped 1 already present\)/)
    assert.equal(Object.keys(await fileEntries(join(dir, 'keys', 'server_allowlist.json'))).length, 2)

    // Show statistics
    const stats = ok(sh(dir, `
# Show statistics
mcp-allowlist stats --config server_config.yml
`)).stdout
    assert.match(stats, /^allowlist: {8}.*keys\/server_allowlist\.json \(\d+(\.\d)? (B|KiB)\)$/m)
    assert.match(stats, /^total keys: {7}2$/m)
    assert.match(stats, /^with public key: {2}1$/m)
    assert.match(stats, /^fingerprint only: 1$/m)
    assert.match(stats, /^expired: {10}1$/m)
    assert.match(stats, /^ {2}api_client: 1$/m)
    assert.match(stats, /^ {2}backup_server: 1$/m)
  })
})

describe('mcp-allowlist behaviour', () => {
  test('json list, duplicate add, --replace, --dry-run, prefix remove', async () => {
    const dir = await freshDir('behaviour')
    const fp = writeKey(join(dir, 'k.pem'))
    ok(cli(dir, ['add', '--config', 'server_config.yml', '--key-file', 'k.pem', '--description', 'first']))
    failed(cli(dir, ['add', '--config', 'server_config.yml', '--key-file', 'k.pem']), 1, new RegExp(`${fp} is already on the allowlist \\(use --replace`))
    ok(cli(dir, ['add', '--config', 'server_config.yml', '--key-file', 'k.pem', '--description', 'second', '--replace']))
    const json = JSON.parse(ok(cli(dir, ['list', '--config', 'server_config.yml', '--format', 'json'])).stdout) as Array<Record<string, unknown>>
    assert.equal(json.length, 1)
    assert.equal(json[0]?.fingerprint, fp)
    assert.equal(json[0]?.description, 'second')
    assert.equal(json[0]?.status, 'active')
    assert.match(String(json[0]?.added_by), /.+@.+/)

    const path = join(dir, 'keys', 'server_allowlist.json')
    const before = await readFile(path, 'utf8')
    const dry = ok(cli(dir, ['remove', '--config', 'server_config.yml', '--fingerprint', fp.slice(0, 8), '--dry-run']))
    assert.equal(dry.stdout, `would remove ${fp}\ndry run: ${path} not changed\n`)
    assert.equal(await readFile(path, 'utf8'), before)
    failed(cli(dir, ['remove', '--config', 'server_config.yml', '--fingerprint', fp.slice(0, 6)]), 2, /too short/)
    assert.equal(ok(cli(dir, ['remove', '--config', 'server_config.yml', '--fingerprint', fp.slice(0, 12)])).stdout, `removed ${fp}\n`)
    assert.equal(ok(cli(dir, ['list', '--config', 'server_config.yml'])).stdout, `no keys in ${path}\n`)
  })

  test('import: legacy Python format; non-empty allowlist needs --merge or --replace', async () => {
    const dir = await freshDir('import')
    writeKey(join(dir, 'k.pem'))
    ok(cli(dir, ['add', '--config', 'server_config.yml', '--key-file', 'k.pem']))
    failed(cli(dir, ['import', '--config', 'server_config.yml', '--input', LEGACY]), 1, /already has 1 key; use --merge to add to it or --replace to overwrite it/)
    assert.match(ok(cli(dir, ['import', '--config', 'server_config.yml', '--input', LEGACY, '--merge'])).stdout, /added 1, skipped 0/)
    const keys = await fileEntries(join(dir, 'keys', 'server_allowlist.json'))
    assert.equal(Object.keys(keys).length, 2)
    assert.equal(keys['5b42e8394b271dcd898d6fec4b321e1bfed5fb676bcdf23faf539890a0083788']?.public_key, 'G5srPXc7ZMIBfxwZb5yTu2gCQ0pOcoEvPkFmz_YjAEM')
    ok(cli(dir, ['import', '--config', 'server_config.yml', '--input', LEGACY, '--replace']))
    assert.deepEqual(Object.keys(await fileEntries(join(dir, 'keys', 'server_allowlist.json'))), ['5b42e8394b271dcd898d6fec4b321e1bfed5fb676bcdf23faf539890a0083788'])
  })

  test('failures: missing key file, bad metadata JSON, unknown fingerprint, corrupt allowlist, bad YAML', async () => {
    const dir = await freshDir('failures')
    failed(cli(dir, ['add', '--config', 'server_config.yml', '--key-file', './keys/nope.pem']), 1, /^error: \.\/keys\/nope\.pem: no such file/)
    writeKey(join(dir, 'k.pem'))
    failed(cli(dir, ['add', '--config', 'server_config.yml', '--key-file', 'k.pem', '--metadata', '{"role": api}']), 1, /^error: --metadata is not valid JSON: /)
    failed(cli(dir, ['add', '--config', 'server_config.yml', '--key-file', 'k.pem', '--metadata', '["x"]']), 1, /--metadata must be a JSON object/)
    failed(cli(dir, ['add', '--config', 'server_config.yml']), 2, /exactly one of --key-file FILE or --fingerprint HEX/)
    assert.equal(existsSync(join(dir, 'keys', 'server_allowlist.json')), false, 'nothing written by failed adds')

    ok(cli(dir, ['add', '--config', 'server_config.yml', '--key-file', 'k.pem']))
    failed(cli(dir, ['remove', '--config', 'server_config.yml', '--fingerprint', 'deadbeefdeadbeef']), 1, /not on the allowlist .*: deadbeefdeadbeef \(nothing removed\)/)

    const path = join(dir, 'keys', 'server_allowlist.json')
    await writeFile(path, '{"version": 1, "keys": {\n  "x": \n')
    for (const args of [['list'], ['stats'], ['add', '--fingerprint', 'f'.repeat(64)], ['remove', '--fingerprint', 'ffffffff']]) {
      failed(cli(dir, [...args, '--config', 'server_config.yml']), 1, new RegExp(`^error: ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid JSON at line 3 column 1: `))
    }
    assert.equal(await readFile(path, 'utf8'), '{"version": 1, "keys": {\n  "x": \n', 'corrupt file left as it was')

    await writeFile(join(dir, 'bad.yml'), 'acl:\n  allowlist_path: [unclosed\n')
    failed(cli(dir, ['list', '--config', 'bad.yml']), 1, /^error: bad\.yml: /)
    failed(cli(dir, ['list', '--config', 'missing.yml']), 1, /^error: missing\.yml: no such file/)
  })
})

describe('concurrency and crash safety', () => {
  test('sixteen concurrent `mcp-allowlist add` processes leave sixteen entries', async () => {
    const dir = await freshDir('concurrent')
    const fps = Array.from({ length: 16 }, (_, i) => writeKey(join(dir, `k${i}.pem`)))
    const env: NodeJS.ProcessEnv = { ...process.env, MCP_DEBUG: '' }
    delete env.MCP_ALLOWLIST_PATH
    const runs = await Promise.all(
      fps.map(
        (_, i) =>
          new Promise<Run>((resolveRun) => {
            const child = spawn(process.execPath, [BIN, 'add', '--config', 'server_config.yml', '--key-file', `k${i}.pem`, '--metadata', `{"role": "r${i}"}`], { cwd: dir, env })
            let stdout = ''
            let stderr = ''
            child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
            child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
            child.on('close', (status) => resolveRun({ status, stdout, stderr }))
          }),
      ),
    )
    for (const r of runs) ok(r)
    const keys = await fileEntries(join(dir, 'keys', 'server_allowlist.json'))
    assert.deepEqual(Object.keys(keys).sort(), [...fps].sort())
    assert.deepEqual((await readdir(join(dir, 'keys'))).sort(), ['server_allowlist.json'], 'no lock or temp file left')
  })

  test('SIGKILL during repeated saves never leaves a broken file; a stale lock does not block the next writer', async () => {
    const dir = await mkdtemp(join(root, 'kill-'))
    const path = join(dir, 'allowlist.json')
    const small = new Allowlist()
    const big = new Allowlist()
    // Fingerprint-only entries with long descriptions: a ≈ 5 MB file, so a kill often lands mid-write.
    for (let i = 0; i < 3000; i++) {
      const entry = { fingerprint: fingerprintOf(Buffer.from(String(i))), metadata: { role: 'bulk', i }, description: `entry ${i} `.padEnd(1500, '.') }
      big.add(entry)
      if (i < 1000) small.add(entry)
    }
    await writeFile(join(dir, 'small.json'), small.toJSON())
    await writeFile(join(dir, 'big.json'), big.toJSON())
    await writeFile(path, small.toJSON())
    const script = join(dir, 'writer.mjs')
    const lib = pathToFileURL(join(DIST, 'allowlist', 'allowlist-file.js')).href
    await writeFile(
      script,
      `import { loadAllowlistFile, saveAllowlistFile } from ${JSON.stringify(lib)}
const dir = ${JSON.stringify(dir)}
const lists = [await loadAllowlistFile(dir + '/small.json'), await loadAllowlistFile(dir + '/big.json')]
process.stdout.write('ready\\n')
for (let i = 0; ; i++) await saveAllowlistFile(dir + '/allowlist.json', lists[i % 2])
`,
    )
    for (let iteration = 0; iteration < 12; iteration++) {
      const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] })
      await new Promise<void>((res) => child.stdout.once('data', () => res()))
      await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 200)))
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGKILL')
      await exited
      const list = await loadAllowlistFile(path) // throws on a broken file
      assert.ok(list.size === 1000 || list.size === 3000, `size ${list.size}`)
      // The next writer gets through quickly even if the killed one held the lock.
      const t0 = Date.now()
      await updateAllowlistFile(path, () => {}, { timeoutMs: 5000 })
      assert.ok(Date.now() - t0 < 3000, `next writer waited ${Date.now() - t0} ms`)
    }
    const leftovers = (await readdir(dir)).filter((f) => !['allowlist.json', 'small.json', 'big.json', 'writer.mjs'].includes(f))
    assert.ok(leftovers.every((f) => /^\.allowlist\.json\.\d+\.[0-9a-f]+\.tmp$/.test(f)), `unexpected leftovers: ${leftovers.join(', ')}`)
  })
})
