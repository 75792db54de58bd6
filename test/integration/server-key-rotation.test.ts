/**
 * Server-key rotation on a running server (docs/operations.md, "Rotating the server key"): ten
 * pinned clients call an authenticated endpoint in a loop (createAuthFetch, a new handshake every
 * other call) while `mcp-keygen rotate start / switch / end` runs; no call fails and every client
 * ends pinned to the new key in its own config file. A client that was away during the announce
 * phase still gets in after the switch and re-pins. Forged updates (an attacker's key, an update
 * replayed from another audience) are ignored and the pin file is untouched; a corrupt or
 * read-only pin file is reported and the old pin kept.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { stringify, parse } from 'yaml'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { b64u } from '../../src/internal/bytes.js'
import { generateKeyPair, signBytes } from '../../src/keys/key-pair.js'
import { createAuthFetchFromConfig, type AuthFetch } from '../../src/mcp/client.js'
import { CONTEXT } from '../../src/protocol/constants.js'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { createWhoamiHandler } from '../../src/server/whoami.js'
import { loadPublicKeyFile } from '../../src/keys/key-file.js'
import { sha256, signingInput } from '../../src/protocol/transcript.js'

const run = promisify(execFile)
const KEYGEN = join(import.meta.dirname, '../../dist/bin/mcp-keygen.js')
const dirs: string[] = []
const servers: RunningServer[] = []
after(async () => {
  for (const s of servers) await s.close()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await cond())) await sleep(20) // bounded by the test timeout
  if (process.env.ROTATION_DEBUG) console.error('reached:', what)
}

interface Setup {
  sb: Sandbox
  server: RunningServer
  events: string[]
}

async function setup(): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-rotate-'))
  dirs.push(dir)
  const sb = await createSandbox(dir, { server: { audit: { enabled: false }, auth: { rate_limit: { per_address: 0, per_key: 0 } } } })
  const events: string[] = []
  const handlers: { whoami?: ReturnType<typeof createWhoamiHandler> } = {}
  const server = await startServerFromConfig(await loadConfig(sb.serverConfigPath, { env: {} }), {
    audit: new AuditLogger({ enabled: false }),
    onEvent: (event, fields) => events.push(`${event} ${JSON.stringify(fields)}`),
    allowlistPollMs: 50,
    fallback: (req, res) => {
      if (!handlers.whoami?.(req, res)) res.writeHead(404).end()
    },
  })
  handlers.whoami = createWhoamiHandler(server.configured.service)
  servers.push(server)
  return { sb, server, events }
}

/** A client config of its own (own empty allowlist: only the pin trusts the server), pinned to `fingerprint`. */
async function clientConfig(s: Setup, name: string, fingerprint: string, url = s.server.authUrl): Promise<string> {
  const file = join(s.sb.dir, `${name}.yml`)
  await writeFile(
    file,
    `# client ${name}: the pin below is rewritten by a verified server-key rotation\n` +
      stringify({
        keys: { private_key_path: './keys/client_private.pem', public_key_path: './keys/client_public.pem' },
        acl: { allowlist_path: `./${name}-allowlist.json` },
        audit: { enabled: false },
        transport: { timeout: 10, retry_attempts: 0 },
        servers: { main: { url, fingerprint } },
      }),
    { mode: 0o640 },
  )
  return file
}

const pinIn = async (file: string): Promise<string> => (parse(await readFile(file, 'utf8')) as { servers: { main: { fingerprint: string } } }).servers.main.fingerprint

interface Client {
  file: string
  fetch: AuthFetch
  logs: string[]
  calls: number
  failures: string[]
  seen: Set<string>
}

async function makeClient(s: Setup, name: string, pinned: string, fetchWrap?: (f: typeof fetch) => typeof fetch, url = s.server.authUrl): Promise<Client> {
  const file = await clientConfig(s, name, pinned, url)
  const logs: string[] = []
  const fetch = await createAuthFetchFromConfig(file, new URL('/whoami', url).href, {
    onPinLog: (m, level) => logs.push(`${level} ${m}`),
    ...(fetchWrap === undefined ? {} : { fetch: fetchWrap(globalThis.fetch) }),
  })
  return { file, fetch, logs, calls: 0, failures: [], seen: new Set() }
}

/** One authenticated call; every other one on a fresh handshake. */
async function call(c: Client): Promise<void> {
  try {
    const res = await c.fetch(c.fetch.authUrl.replace(/\/auth$/, '/whoami'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
    const body = (await res.json()) as { server_fingerprint?: string }
    if (res.status !== 200) c.failures.push(`status ${res.status} ${JSON.stringify(body)}`)
    c.seen.add(c.fetch.current!.serverFingerprint)
  } catch (err) {
    c.failures.push(`${(err as Error).name}: ${(err as Error).message}`)
  }
  c.calls++
  if (c.calls % 2 === 0) c.fetch.invalidate()
}

const keygen = (...args: string[]): Promise<{ stdout: string }> => run(process.execPath, [KEYGEN, ...args])

test('ten pinned clients keep calling through rotate start, switch and end; every one ends pinned to the new key in its file', async () => {
  const s = await setup()
  const old = s.sb.serverKey.fingerprint
  const clients = await Promise.all(Array.from({ length: 10 }, (_, i) => makeClient(s, `client${i}`, old)))
  let stop = false
  const loops = clients.map(async (c) => {
    while (!stop) await call(c)
  })
  const callsNow = clients.map((c) => c.calls)
  const progressed = (n: number) => (): boolean => clients.every((c, i) => c.calls >= callsNow[i]! + n)
  try {
    await until('calls before the rotation', progressed(4))

    await keygen('rotate', 'start', '--config', s.sb.serverConfigPath)
    const next = (await keygen('rotate', 'status', '--config', s.sb.serverConfigPath)).stdout.match(/to:\s+([0-9a-f]{64})/)![1]!
    // Announce phase: each client re-pins (in memory and in its file) at its next handshake.
    await until('every client re-pinned', async () => (await Promise.all(clients.map((c) => pinIn(c.file)))).every((p) => p === next))
    for (const c of clients) await (c.fetch as unknown as { session(): Promise<unknown> }).session()

    // A client that was away during the whole announce phase: still pinned to the old key.
    const away = await makeClient(s, 'away', old)

    await keygen('rotate', 'switch', '--config', s.sb.serverConfigPath)
    await until('the server presents the new key', () => s.server.configured.service.fingerprint === next)
    callsNow.splice(0, callsNow.length, ...clients.map((c) => c.calls))
    await until('calls after the switch', progressed(4))
    assert.ok(clients.every((c) => c.seen.has(next)), 'every client has talked to the new key')

    await call(away)
    assert.deepEqual(away.failures, [], 'the old pin gets in through the previous key')
    await away.fetch.session()
    await until('the straggler re-pinned', async () => (await pinIn(away.file)) === next)

    await keygen('rotate', 'end', '--config', s.sb.serverConfigPath)
    await until('the previous key is forgotten', () => s.events.some((e) => e.startsWith('server_key.reload') && e.includes('"phase":"none"')))
    callsNow.splice(0, callsNow.length, ...clients.map((c) => c.calls))
    await until('calls after the end', progressed(4))
  } finally {
    stop = true
    await Promise.all(loops)
  }
  const next = s.server.configured.service.fingerprint
  assert.notEqual(next, old)
  for (const c of clients) {
    assert.deepEqual(c.failures, [], `${c.file}: no call failed`)
    assert.equal(await pinIn(c.file), next, `${c.file} pins the new key`)
    assert.match(await readFile(c.file, 'utf8'), /^# client client\d: the pin below/, 'comments are kept')
    assert.equal((await stat(c.file)).mode & 0o777, 0o640, 'same permissions')
    assert.match(c.logs.join('\n'), new RegExp(`INFO server key rotated: pin ${old} → ${next}`))
  }
  // The public key file follows the switch.
  assert.equal((await loadPublicKeyFile(join(s.sb.dir, 'keys/server_public.pem'))).fingerprint, next)
  // After the end the old pin is refused again.
  const late = await makeClient(s, 'late', old)
  await call(late)
  assert.match(late.failures.join('\n'), /server_key_mismatch|does not match the fingerprint pinned/)
  assert.equal(await pinIn(late.file), old)
})

/** Rewrites message 4's server_key_update on its way to the client (a machine in the middle). */
function rewritingUpdate(rewrite: (update: Record<string, string>) => Record<string, string>): (f: typeof fetch) => typeof fetch {
  return (f) =>
    (async (input: string | URL | Request, init?: RequestInit) => {
      const res = await f(input, init)
      const text = await res.text()
      let body: Record<string, unknown>
      try {
        body = JSON.parse(text) as Record<string, unknown>
      } catch {
        return new Response(text, { status: res.status, headers: res.headers })
      }
      if (body.type === 'auth_complete' && body.server_key_update !== undefined) body.server_key_update = rewrite(body.server_key_update as Record<string, string>)
      return new Response(JSON.stringify(body), { status: res.status, headers: { 'content-type': 'application/json' } })
    }) as typeof fetch
}

test('an update not signed by the pinned key, or made for another audience, is ignored: the pin and its file stay', async () => {
  const s = await setup()
  const old = s.sb.serverKey.fingerprint
  await keygen('rotate', 'start', '--config', s.sb.serverConfigPath)
  await until('the server announces', () => s.events.some((e) => e.includes('"phase":"announce"')))
  const attacker = generateKeyPair()
  const oldRaw = s.sb.serverKey.publicKeyRaw
  // 1. The attacker's own key announced as the successor, signed by the attacker (it has no old key).
  const forged = rewritingUpdate(() => {
    const sig = (ctx: string) => b64u(signBytes(attacker.privateKey, signingInput(ctx as typeof CONTEXT.serverKeyUpdate, sha256(Buffer.from('anything')))))
    return { from_public_key: b64u(oldRaw), to_public_key: b64u(attacker.publicKeyRaw), from_signature: sig(CONTEXT.serverKeyUpdate), to_signature: sig(CONTEXT.serverKeyProve) }
  })
  // 2. A genuine update, captured from a handshake another client made for another audience.
  let captured: Record<string, string> | undefined
  const capture = rewritingUpdate((u) => (captured = u))
  // (The server answers to both names: the default audience check accepts localhost on loopback.)
  const other = await makeClient(s, 'other', old, capture, s.server.authUrl.replace('127.0.0.1', 'localhost'))
  await other.fetch.session()
  assert.ok(captured !== undefined)
  assert.equal(other.fetch.current!.serverFingerprint, old)
  const replayed = rewritingUpdate(() => captured!)

  for (const [name, wrap] of [['attacker', forged], ['replayed', replayed]] as const) {
    const c = await makeClient(s, name, old, wrap)
    const before = await readFile(c.file, 'utf8')
    await call(c)
    await call(c)
    await (c.fetch.current !== undefined ? Promise.resolve() : c.fetch.session())
    assert.deepEqual(c.failures, [], `${name}: the handshake itself stands (the server proved the pinned key)`)
    assert.equal(await readFile(c.file, 'utf8'), before, `${name}: the pin file is unchanged`)
    assert.match(c.logs.join('\n'), /WARN ignored a server key update/, `${name}: the update was reported as ignored`)
    assert.doesNotMatch(c.logs.join('\n'), /INFO server key rotated/)
  }
})

test('a corrupt or read-only pin file: the rotation is reported with the reason, the old pin is kept, the calls go on', async () => {
  const s = await setup()
  const old = s.sb.serverKey.fingerprint
  await keygen('rotate', 'start', '--config', s.sb.serverConfigPath)
  await until('the server announces', () => s.events.some((e) => e.includes('"phase":"announce"')))

  const corrupt = await makeClient(s, 'corrupt', old)
  await writeFile(corrupt.file, (await readFile(corrupt.file, 'utf8')) + 'servers: [unclosed\n')
  const corruptText = await readFile(corrupt.file, 'utf8')
  const readOnly = await makeClient(s, 'readonly', old)
  await chmod(readOnly.file, 0o440)
  const readOnlyText = await readFile(readOnly.file, 'utf8')

  for (const c of [corrupt, readOnly]) {
    await call(c)
    await until('the failed write is reported', () => c.logs.some((l) => l.startsWith('ERROR')))
    await call(c)
    await call(c)
    assert.deepEqual(c.failures, [], 'calls go on under the old pin')
  }
  assert.match(corrupt.logs.join('\n'), /ERROR could not record the rotated server key [0-9a-f]{64}: .*corrupt\.yml: cannot move the pin of server "main" .*not valid YAML.*; the pin stays/)
  assert.match(readOnly.logs.join('\n'), /ERROR could not record the rotated server key [0-9a-f]{64}: .*readonly\.yml: .*not writable; make it writable \(chmod u\+w/)
  assert.equal(await readFile(corrupt.file, 'utf8'), corruptText)
  assert.equal(await readFile(readOnly.file, 'utf8'), readOnlyText)
  assert.equal(await pinIn(readOnly.file), old)
})
