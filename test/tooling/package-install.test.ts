/**
 * The package as a user gets it: `npm pack`'s tarball installed into an empty project (offline,
 * from the npm cache, with the versions of this repository's lockfile), then the library imported,
 * its types compiled with skipLibCheck false, and the CLIs run. Also the install weight: the MCP
 * SDK is an optional peer dependency, and ioredis is loaded only when a Redis store is made.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, readdir, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The checkout, which `npm pack` packs. The suite runs from .test-tree (scripts/build-test-tree.mjs),
 * whose dist is a symlink to the checkout's, and npm pack does not follow a symlinked folder.
 */
const ROOT = dirname(await realpath(join(fileURLToPath(new URL('../..', import.meta.url)), 'dist')))
const SDK = '@modelcontextprotocol/sdk'

interface LockEntry {
  version?: string
  dev?: boolean
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  [key: string]: unknown
}
type Lock = { packages: Record<string, LockEntry> }

interface Run {
  code: number
  stdout: string
  stderr: string
}

function run(file: string, args: string[], cwd: string): Promise<Run> {
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  delete env.NODE_OPTIONS
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env, timeout: 180_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr: err !== null && typeof err.code !== 'number' ? `${stderr}${err.message}` : stderr })
    })
  })
}

/** Where node would find `name` from the package at `from` (nested node_modules first, then up). */
function resolveInLock(lock: Lock, from: string, name: string): string | undefined {
  let base = from
  for (;;) {
    const candidate = `${base === '' ? '' : `${base}/`}node_modules/${name}`
    if (lock.packages[candidate] !== undefined) return candidate
    if (base === '') return undefined
    const cut = base.lastIndexOf('/node_modules/')
    base = cut < 0 ? '' : base.slice(0, cut)
  }
}

/** Every lockfile entry `roots` need at run time (dependencies, optional ones, required peers). */
function closure(lock: Lock, roots: string[]): Set<string> {
  const seen = new Set<string>()
  const visit = (path: string): void => {
    if (seen.has(path)) return
    seen.add(path)
    const e = lock.packages[path]!
    const peers = Object.keys(e.peerDependencies ?? {}).filter((n) => e.peerDependenciesMeta?.[n]?.optional !== true)
    for (const name of [...Object.keys(e.dependencies ?? {}), ...Object.keys(e.optionalDependencies ?? {}), ...peers]) {
      const found = resolveInLock(lock, path, name)
      if (found !== undefined) visit(found)
    }
  }
  for (const r of roots) visit(r)
  return seen
}

let work = ''
let tarball = ''
let project = ''
let lock: Lock
let pkg: { version: string; bin: Record<string, string>; dependencies: Record<string, string>; peerDependencies: Record<string, string> }

/** package.json and package-lock.json of a consumer project that depends on the tarball (and `extra`). */
async function writeConsumer(extra: string[]): Promise<void> {
  const integrity = `sha512-${createHash('sha512').update(await readFile(tarball)).digest('base64')}`
  const deps: Record<string, string> = { 'mcp-pki-auth': `file:${tarball}` }
  for (const name of extra) deps[name] = lock.packages[`node_modules/${name}`]!.version!
  const packages: Record<string, LockEntry> = {
    '': { name: 'consumer', version: '1.0.0', dependencies: deps },
    'node_modules/mcp-pki-auth': {
      version: pkg.version,
      resolved: `file:${tarball}`,
      integrity,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      peerDependencies: pkg.peerDependencies,
      peerDependenciesMeta: { [SDK]: { optional: true } },
    },
  }
  const roots = Object.keys(pkg.dependencies).map((n) => `node_modules/${n}`).concat(extra.map((n) => `node_modules/${n}`))
  for (const path of closure(lock, roots)) {
    const entry = { ...lock.packages[path]! }
    delete entry.dev
    delete entry.devOptional
    packages[path] = entry
  }
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module', dependencies: deps }, null, 2))
  await writeFile(join(project, 'package-lock.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2))
}

async function npmCiOffline(): Promise<void> {
  const r = await run('npm', ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], project)
  assert.equal(r.code, 0, `npm ci of the tarball: ${r.stderr}`)
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'mcp-pki-install-'))
  project = join(work, 'consumer')
  lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as Lock
  pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as typeof pkg
  // What `make pack` makes, from the dist/ the suite was built with (make pack also rebuilds dist).
  const packed = await run('npm', ['pack', '--loglevel=warn', '--pack-destination', work], ROOT)
  assert.equal(packed.code, 0, packed.stderr)
  tarball = join(work, packed.stdout.trim().split('\n').at(-1)!)
  await run('mkdir', ['-p', project], work)
  await writeConsumer([])
  await npmCiOffline()
})

after(async () => {
  await rm(work, { recursive: true, force: true })
})

test('the tarball installs light: no MCP SDK (optional peer), a short production tree', async () => {
  const top = await readdir(join(project, 'node_modules'))
  const count = top.flatMap((n) => (n.startsWith('@') ? [] : [n])).length + (await Promise.all(top.filter((n) => n.startsWith('@')).map((s) => readdir(join(project, 'node_modules', s))))).flat().length
  assert.ok(!top.includes('express'), 'express comes only with the SDK')
  await assert.rejects(readdir(join(project, 'node_modules', '@modelcontextprotocol')), 'the SDK is not installed by default')
  assert.ok(count < 25, `installed packages: ${count} (16 from the lockfile, plus mcp-pki-auth and npm's own files)`)
})

test('the installed library imports, works, and loads ioredis only when a Redis store is made', async () => {
  await writeFile(
    join(project, 'use.mjs'),
    `import { createRequire } from 'node:module'
import { createMcpAuth, createAuthFetch, generateKeyPair, fingerprintOf, Allowlist, RedisNonceStore, AuthError } from 'mcp-pki-auth'
import { createAuthFetchFromConfig } from 'mcp-pki-auth/mcp/client'
const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('/node_modules/ioredis/'))
const kp = generateKeyPair()
const out = {
  functions: [createMcpAuth, createAuthFetch, createAuthFetchFromConfig, Allowlist].every((f) => typeof f === 'function'),
  fingerprint: fingerprintOf(kp.publicKeyRaw),
  authError: new AuthError('config_invalid', 'x').code,
  ioredisBefore: loaded(),
}
const store = new RedisNonceStore({ redis: 'redis://127.0.0.1:1', keyPrefix: 'never-used:', onError: () => {} })
out.ioredisAfter = loaded()
await store.close()
console.log(JSON.stringify(out))
`,
  )
  const r = await run(process.execPath, ['use.mjs'], project)
  assert.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as Record<string, unknown>
  assert.equal(out.functions, true)
  assert.match(String(out.fingerprint), /^[0-9a-f]{64}$/)
  assert.equal(out.authError, 'config_invalid')
  assert.equal(out.ioredisBefore, false, 'importing the package does not load ioredis')
  assert.equal(out.ioredisAfter, true, 'a Redis store loads it')
})

test('a consumer project type-checks against the published .d.ts with skipLibCheck false (no TS7016 for ws)', async () => {
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, skipLibCheck: false, noEmit: true, types: ['node'] }, files: ['index.ts'] }),
  )
  await writeFile(
    join(project, 'index.ts'),
    `import { authenticateWebSocket, createAuthWebSocketServer, createMcpAuth, RedisNonceStore } from 'mcp-pki-auth'
import { createAuthFetch } from 'mcp-pki-auth/mcp/client'
import type { McpAuth } from 'mcp-pki-auth/mcp/server'
export const used: unknown[] = [authenticateWebSocket, createAuthWebSocketServer, createMcpAuth, RedisNonceStore, createAuthFetch]
export type Used = [Awaited<ReturnType<typeof authenticateWebSocket>>['socket'], ReturnType<typeof createAuthWebSocketServer>['wss'], McpAuth]
`,
  )
  const r = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], project)
  assert.equal(r.code, 0, `tsc: ${r.stdout}${r.stderr}`)
})

test('the installed CLIs run; the MCP ones say how to add the SDK, and work once it is added', async () => {
  const bin = (name: string): string => join(project, 'node_modules', '.bin', name)
  const keygen = await run(bin('mcp-keygen'), ['--output-dir', 'keys', '--key-name', 'server'], project)
  assert.equal(keygen.code, 0, keygen.stderr)
  const init = await run(bin('mcp-config-validate'), ['--init', 'server', 'server_config.yml'], project)
  assert.equal(init.code, 0, init.stderr)
  const check = await run(bin('mcp-config-validate'), ['--check-keys', 'server_config.yml'], project)
  assert.equal(check.code, 0, check.stderr)
  assert.match(check.stdout, /^ok: server_config\.yml is valid$/m)

  for (const tool of ['mcp-pki-proxy', 'mcp-pki-gateway']) {
    const r = await run(bin(tool), ['--help'], project)
    assert.equal(r.code, 1, r.stdout)
    assert.match(r.stderr, new RegExp(`^error: ${tool} needs the MCP SDK \\(@modelcontextprotocol/sdk\\), an optional peer dependency`, 'm'))
    assert.match(r.stderr, /^hint: install it next to mcp-pki-auth: npm install @modelcontextprotocol\/sdk/m)
  }

  await writeConsumer([SDK])
  await npmCiOffline()
  for (const tool of ['mcp-pki-proxy', 'mcp-pki-gateway']) {
    const r = await run(bin(tool), ['--help'], project)
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`Usage: ${tool}`))
  }
})
