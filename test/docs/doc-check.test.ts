/**
 * Every code block of README.md, examples/README.md and docs/ (PROTOCOL.md excepted) that is
 * marked `<!-- doc-check: … -->` runs as pasted (see test/docs/doc-blocks.ts for the marks): in
 * a fresh folder, with the package's CLIs on PATH (as after `npm install -g .`) and
 * `mcp-pki-auth` importable (as after `npm install mcp-pki-auth`). The only substitutions are the
 * placeholders a reader replaces: the ports 8443 and 3000 become free ones, `/path/to/mcp-pki-auth`
 * this checkout, and `/path/to/your/folder` the folder of README's Quick start.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { markedBlocks, unmarkedShellBlocks, type DocBlock } from './doc-blocks.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '')
const DOCS = ['README.md', 'examples/README.md', 'docs/mcp-server.md', 'docs/mcp-client.md', 'docs/mcp-gateway.md', 'docs/mcp-proxy.md', 'docs/configuration.md', 'docs/operations.md', 'docs/benchmarks.md']

let work = ''
let env: NodeJS.ProcessEnv = {}
const sessions = new Map<string, string>()
let substitutions: [string, string][] = []

async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

function substitute(text: string): string {
  let out = text
  for (const [from, to] of substitutions) out = out.split(from).join(to)
  return out
}

/** The CLIs of package.json's bin on PATH, as `npm install -g .` puts them there. */
async function binFolder(): Promise<string> {
  const dir = join(work, 'bin')
  await mkdir(dir)
  const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }
  for (const [name, target] of Object.entries(pkg.bin)) {
    await writeFile(join(dir, name), `#!/bin/sh\nexec '${process.execPath}' '${join(ROOT, target)}' "$@"\n`)
    await chmod(join(dir, name), 0o755)
  }
  return dir
}

/** A folder where `import … from 'mcp-pki-auth'` and `npx tsx` work, as in a project that installed the package. */
async function sessionFolder(name: string): Promise<string> {
  let dir = sessions.get(name)
  if (dir !== undefined) return dir
  dir = await mkdtemp(join(work, 'session-'))
  await mkdir(join(dir, 'node_modules'))
  for (const entry of await readdir(join(ROOT, 'node_modules'))) {
    await symlink(join(ROOT, 'node_modules', entry), join(dir, 'node_modules', entry))
  }
  await symlink(ROOT, join(dir, 'node_modules', 'mcp-pki-auth'))
  sessions.set(name, dir)
  return dir
}

interface Outcome {
  code: number | null
  output: string
}

function runBash(script: string, cwd: string, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => (output += d.toString()))
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), timeoutMs)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, output })
    })
  })
}

/** Whether something accepts TCP connections at the URL's host and port (TLS servers included). */
function listening(url: string): Promise<boolean> {
  const u = new URL(url)
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port), u.hostname, () => {
      socket.destroy()
      resolve(true)
    })
    socket.on('error', () => resolve(false))
  })
}

async function startBackground(block: DocBlock, script: string, cwd: string): Promise<ChildProcess> {
  const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()))
  let exited = false
  child.on('exit', () => (exited = true))
  const url = substitute(block.wait ?? '')
  const deadline = Date.now() + 90_000
  while (url !== '') {
    if (exited) assert.fail(`${block.doc}:${block.line}: the background block exited before ${url} answered:\n${output}`)
    if (Date.now() > deadline) assert.fail(`${block.doc}:${block.line}: ${url} did not answer within 90 s:\n${output}`)
    const answered = await listening(url)
    if (answered) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return child
}

function stop(children: ChildProcess[]): Promise<void> {
  return Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve()
          c.once('exit', () => resolve())
          try {
            process.kill(-c.pid!, 'SIGTERM')
          } catch {
            resolve()
          }
        }),
    ),
  ).then(() => undefined)
}

/** Background processes by the doc after which they stop. */
const running = new Map<string, ChildProcess[]>()

async function checkDoc(doc: string): Promise<number> {
  const blocks = markedBlocks(ROOT, doc)
  try {
    for (const block of blocks) {
      const cwd = block.cwd === 'checkout' ? ROOT : await sessionFolder(block.session)
      const where = `${block.doc}:${block.line}`
      if (block.action === 'skip') {
        continue
      } else if (block.action === 'file') {
        await mkdir(dirname(join(cwd, block.file!)), { recursive: true })
        await writeFile(join(cwd, block.file!), substitute(block.body))
      } else if (block.action === 'background') {
        const child = await startBackground(block, substitute(block.body), cwd)
        running.set(block.until, [...(running.get(block.until) ?? []), child])
      } else {
        const r = await runBash(substitute(block.body), cwd, 120_000)
        assert.equal(r.code, 0, `${where}: the block failed (exit ${r.code}):\n${block.body}\n--- output ---\n${r.output}`)
        if (block.expect !== undefined) assert.ok(r.output.includes(block.expect), `${where}: output lacks "${block.expect}":\n${r.output}`)
        if (block.stop) {
          await stop(running.get(doc) ?? [])
          running.delete(doc)
        }
      }
    }
  } finally {
    await stop(running.get(doc) ?? [])
    running.delete(doc)
  }
  return blocks.length
}

const counts = new Map<string, number>()

test('set up: CLIs on PATH, free ports for 8443 and 3000', async () => {
  work = await mkdtemp(join(tmpdir(), 'doc-check-'))
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MCP_') && k !== 'NODE_TEST_CONTEXT' && k !== 'NODE_OPTIONS'))
  env = { ...clean, PATH: `${await binFolder()}:${dirname(process.execPath)}:${process.env.PATH ?? ''}` }
  substitutions = [
    ['/path/to/mcp-pki-auth', ROOT],
    ['/path/to/your/folder', await sessionFolder('quickstart')],
    ['8443', String(await freePort())],
    ['3000', String(await freePort())],
  ]
})

for (const doc of DOCS) {
  test(`${doc}: every marked block runs as pasted`, async () => {
    counts.set(doc, await checkDoc(doc))
  })
}

test('the blocks the issue named are marked (and so checked)', () => {
  const marked = (doc: string): DocBlock[] => markedBlocks(ROOT, doc)
  assert.ok(marked('README.md').filter((b) => b.action === 'run').length >= 3, 'README Quick start')
  assert.ok(marked('examples/README.md').some((b) => b.body.includes('mkdir -p certs') && b.body.includes('openssl')), 'openssl after mkdir')
  assert.ok(marked('examples/README.md').some((b) => b.body.includes('examples/client.ts')), 'examples from the checkout')
  assert.ok(marked('docs/mcp-client.md').some((b) => b.lang === 'ts' && b.body.includes('client.close()')), '1.x client snippet closes')
  assert.ok(marked('docs/mcp-server.md').some((b) => b.lang === 'ts' && b.body.includes('mountMcpAuth')), 'server essential lines')
  assert.ok(marked('docs/mcp-gateway.md').some((b) => b.body.includes('mcp-pki-gateway')), 'gateway example')
  const tls = marked('docs/configuration.md')
  assert.ok(tls.some((b) => b.file === 'server_config.yml' && b.body.includes('verify_mode: "required"')), 'verify_mode required')
  assert.ok(tls.some((b) => b.file === 'client_config.yml' && b.body.includes('cert_file')), 'client certificate in a client config')
})

test('every shell block is run by this check, or says why not (skip="…")', () => {
  // docs/mcp-proxy.md is being rewritten for the proxy's own issue items; it joins this rule then.
  const unmarked = DOCS.filter((doc) => doc !== 'docs/mcp-proxy.md').flatMap((doc) => unmarkedShellBlocks(ROOT, doc).map((line) => `${doc}:${line}`))
  assert.deepEqual(unmarked, [], 'mark these blocks <!-- doc-check: run … --> or <!-- doc-check: skip="reason" -->')
})

after(async () => {
  await stop([...running.values()].flat())
  if (work !== '') await rm(work, { recursive: true, force: true })
})
