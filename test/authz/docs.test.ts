/**
 * docs/authorization.md runs as written: its policy, its mcp-policy session (output compared line
 * by line), its SDK server (then called by a real SDK client) and its custom Authorizer.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { appendFile, chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { Authorizer } from '../../src/authz/types.js'
import { createAuthFetchFromConfig } from '../../src/mcp/client.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { closeServer, textOf } from '../mcp/fixtures/harness.js'
import { importTypeScript } from '../helpers/import-typescript.js'

const ROOT = resolve(import.meta.dirname, '..', '..')
const DOC = join(ROOT, 'docs', 'authorization.md')
const cleanups: (() => Promise<unknown>)[] = []
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {})
})

/** The first fenced block after `marker`. */
async function block(marker: string): Promise<string> {
  const text = await readFile(DOC, 'utf8')
  const at = text.indexOf(marker)
  assert.ok(at >= 0, `docs/authorization.md has ${marker}`)
  const m = /```[a-z]*\n([\s\S]*?)```/.exec(text.slice(at))
  assert.ok(m, `a code block after ${marker}`)
  return m[1]!
}

/** A TypeScript block with its package imports pointed at this checkout. */
function localImports(code: string): string {
  const ours: Record<string, string> = { 'mcp-pki-auth': 'src/index.js', 'mcp-pki-auth/authz': 'src/authz/index.js', 'mcp-pki-auth/mcp/server': 'src/mcp/server.js' }
  return code.replace(/from '([^']+)'/g, (_all, spec: string) => {
    if (spec.startsWith('node:')) return `from '${spec}'`
    return `from '${ours[spec] !== undefined ? pathToFileURL(join(ROOT, ours[spec])).href : import.meta.resolve(spec)}'`
  })
}

async function sandbox(): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'authz-docs-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const sb = await createSandbox(dir, { clientMetadata: { role: 'reader', org: 'contractors' } })
  await appendFile(sb.serverConfigPath, await block('<!-- policy-example -->'))
  return sb
}

test('the mcp-policy session prints what the doc shows', async () => {
  const sb = await sandbox()
  const bin = join(sb.dir, 'bin')
  await mkdir(bin)
  for (const name of ['mcp-policy', 'mcp-keygen']) {
    await writeFile(join(bin, name), `#!/bin/sh\nexec "${process.execPath}" "${join(ROOT, 'dist', 'bin', `${name}.js`)}" "$@"\n`)
    await chmod(join(bin, name), 0o755)
  }
  const script = await block('<!-- policy-cli-example -->')
  const stdout = await new Promise<string>((res, rej) =>
    execFile('bash', ['-c', script], { cwd: sb.dir, env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` } }, (err, out, errOut) => (err ? rej(new Error(`${err.message}\n${errOut}`)) : res(out))),
  )
  const shortFp = (t: string) => t.replace(/for [0-9a-f]{16}… /g, 'for <fp>… ')
  assert.equal(shortFp(stdout), shortFp(await block('<!-- policy-cli-output -->')))
  assert.ok(stdout.includes(`for ${sb.clientKey.fingerprint.slice(0, 16)}… `))
})

test('the documented SDK server enforces the policy for a real SDK client', async () => {
  const sb = await sandbox()
  let code = await block('<!-- policy-server-example -->')
  for (const [from, to] of [
    ["loadConfig('server_config.yml')", `loadConfig(${JSON.stringify(sb.serverConfigPath)})`],
    ["startPolicyFromConfig('server_config.yml'", `startPolicyFromConfig(${JSON.stringify(sb.serverConfigPath)}`],
    ["server.listen(8443, '127.0.0.1')", "server.listen(0, '127.0.0.1')"],
  ] as const) {
    assert.ok(code.includes(from), from)
    code = code.replace(from, to)
  }
  const mod = await importTypeScript<{ server: Server; close(): Promise<void> }>(join(sb.dir, 'server.mts'), localImports(code))
  cleanups.push(() => mod.close())
  cleanups.push(() => closeServer(mod.server))
  if (!mod.server.listening) await new Promise((r) => mod.server.once('listening', r))
  const url = `http://127.0.0.1:${(mod.server.address() as { port: number }).port}/mcp`
  await writeFile(sb.clientConfigPath, (await readFile(sb.clientConfigPath, 'utf8')) + `servers:\n  doc:\n    url: ${url.replace(/\/mcp$/, '/auth')}\n    fingerprint: ${sb.serverKey.fingerprint}\n`)
  const authFetch = await createAuthFetchFromConfig(sb.clientConfigPath, url, { interactive: false })
  const client = new Client({ name: 'doc-client', version: '1' })
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: authFetch }))
  cleanups.push(() => client.close())
  assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['search_web'])
  assert.equal(textOf(await client.callTool({ name: 'search_web', arguments: {} })), 'search_web ran')
  await assert.rejects(client.callTool({ name: 'delete_user', arguments: {} }), /forbidden by policy/)
})

test('the documented custom Authorizer decides as its comment says', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'authz-docs-engine-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const { authorizer } = await importTypeScript<{ authorizer: Authorizer }>(join(dir, 'engine.mts'), localImports(await block('<!-- policy-engine-example -->')))
  const reader = { fingerprint: 'a'.repeat(64), role: 'reader', org: undefined, scopes: [], metadata: {} }
  assert.equal(authorizer.decide(reader, { kind: 'tool', name: 'search_web', arguments: { query: 'mcp' } }).allowed, true)
  assert.equal(authorizer.decide(reader, { kind: 'tool', name: 'search_web' }).allowed, true, 'listed (no arguments)')
  assert.deepEqual(authorizer.decide(reader, { kind: 'tool', name: 'search_web', arguments: { query: 'x'.repeat(200) } }), { allowed: false, rule: 'short-queries' })
  assert.equal(authorizer.decide({ ...reader, role: 'guest' }, { kind: 'tool', name: 'search_web' }).allowed, false)
})
