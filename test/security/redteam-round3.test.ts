/**
 * Red team, round 3: attacks on the round-2 fixes — the default audience check bound to the
 * socket's local address (local-audience.ts, the verdict cache in server-handshake.ts), the
 * fail-closed fetchAuthHandler and other socket-less paths, the allowlist removal memory
 * (AllowlistHolder.removedAt, session-verifier.ts), the stale-lock breaker (file-lock.ts) and the
 * cached prefixes of formatTimestamp (internal/clock.ts). Sockets are real and on loopback only.
 * Tests named `held:` are regression tests for attacks the product held; `finding N` tests
 * reproduce a finding (fixed, or `todo`).
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { hostname, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { loadAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { acquireFileLock, writeFileAtomic } from '../../src/allowlist/file-lock.js'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { AuthenticationEngine } from '../../src/compat.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createClientHandshake, type ClientSession } from '../../src/handshake/client-handshake.js'
import { canonicalIp, namesThisServer } from '../../src/handshake/local-audience.js'
import { formatTimestamp } from '../../src/internal/clock.js'
import { createMcpAuth, mountMcpAuth, type McpAuth } from '../../src/mcp/server.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService } from '../../src/server/from-config.js'
import { createSandbox, type ConfigObject, type Sandbox } from '../../src/server/sandbox.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { collectReply } from '../helpers/http-reply.js'

const cleanups: Array<() => Promise<void>> = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

const quiet = (): AuditLogger => new AuditLogger({ enabled: false })

async function sandbox(server: ConfigObject = {}): Promise<Sandbox> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-redteam3-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  return createSandbox(dir, { server: { audit: { enabled: false }, ...server } })
}

interface Reply {
  status: number | string
  text: string
  json: { type?: string; error?: { code?: string } | string; challenge_token?: unknown; session_token?: unknown } & Record<string, unknown>
}

interface Target {
  host: string
  port: number
}

/** One request on a fresh connection to `to` (a loopback address). */
function send(to: Target, o: { path?: string; body?: string; headers?: Record<string, string> }): Promise<Reply> {
  return new Promise((resolveReply) => {
    const body = o.body ?? ''
    const req = http.request(
      { host: to.host, port: to.port, family: to.host.includes(':') ? 6 : 4, path: o.path ?? '/mcp', method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...o.headers } },
      (res) => collectReply<Reply['json']>(res, resolveReply),
    )
    const timer = setTimeout(() => {
      req.destroy()
      resolveReply({ status: 'timeout', text: '', json: {} })
    }, 5000)
    req.on('error', (e: NodeJS.ErrnoException) => resolveReply({ status: `error ${e.code ?? e.message}`, text: '', json: {} }))
    req.on('close', () => clearTimeout(timer))
    req.end(body)
  })
}

const codeOf = (r: Reply): string | undefined => (typeof r.json.error === 'string' ? r.json.error : r.json.error?.code)
const m1For = (sb: Sandbox, audience: string): unknown => createClientHandshake({ keyPair: sb.clientKey, audience, serverTrust: () => ({}) }).start()

async function handshakeAt(to: Target, sb: Sandbox, audience: string): Promise<ClientSession> {
  const c = createClientHandshake({ keyPair: sb.clientKey, audience, serverTrust: () => ({}) })
  const r2 = await send(to, { path: '/auth', body: JSON.stringify(c.start()) })
  assert.equal(r2.status, 200, r2.text)
  const r4 = await send(to, { path: '/auth', body: JSON.stringify(await c.handleChallenge(r2.json)) })
  assert.equal(r4.status, 200, r4.text)
  return c.handleComplete(r4.json)
}

interface Front {
  configured: ConfiguredAuthService
  mcpAuth: McpAuth
  /** One node:http server per address, all on the same port, all serving the same AuthService. */
  at: Record<string, Target>
  port: number
}

/**
 * One AuthService (one handshake, one verdict cache) mounted on several node:http servers, one per
 * loopback address, all on the same port number.
 */
async function front(sb: Sandbox, hosts: string[], o: { clock?: () => number } = {}): Promise<Front> {
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const configured = await createAuthServiceFromConfig(config, { audit: quiet(), allowlistPollMs: 100, ...(o.clock === undefined ? {} : { clock: o.clock }) })
  cleanups.push(() => configured.close())
  const mcpAuth = createMcpAuth(configured.service)
  const at: Record<string, Target> = {}
  let port = 0
  for (const host of hosts) {
    const server = http.createServer()
    mountMcpAuth(server, mcpAuth, { fetchHandler: (_req, info) => Response.json({ reached: true, client: info.clientId }) })
    await new Promise<void>((r, j) => {
      server.once('error', j)
      server.listen(port, host, r)
    })
    cleanups.push(async () => {
      server.closeAllConnections()
      await new Promise<void>((r) => server.close(() => r()))
    })
    port = (server.address() as AddressInfo).port
    at[host] = { host, port }
  }
  return { configured, mcpAuth, at, port }
}

async function m1Status(to: Target, sb: Sandbox, audience: string): Promise<'accepted' | 'refused'> {
  const r = await send(to, { path: '/auth', body: JSON.stringify(m1For(sb, audience)) })
  if (r.status === 200 && r.json.type === 'auth_challenge') return 'accepted'
  assert.equal(r.status, 400, `${audience} at ${to.host}: ${r.text}`)
  assert.equal(codeOf(r), 'invalid_message', audience)
  assert.equal(r.json.challenge_token, undefined)
  return 'refused'
}

const NO_LIMITS: ConfigObject = { auth: { rate_limit: { per_address: 0, per_key: 0 } } }

// ------------------------------------------------------------------ 1. audience bound to the local address

test('held: one service on 127.0.0.1, 127.0.0.2 and ::1 (same port) accepts an IP audience only on the socket it names — in any order, so no verdict is reused across addresses', async () => {
  const sb = await sandbox(NO_LIMITS)
  const f = await front(sb, ['127.0.0.1', '127.0.0.2', '::1'])
  const P = f.port
  // audience → the one address whose socket may accept it (undefined: none; 'loopback': all three)
  const cases: Array<[string, string | undefined]> = [
    [`http://127.0.0.1:${P}`, '127.0.0.1'],
    [`http://127.0.0.2:${P}`, '127.0.0.2'],
    [`http://[::1]:${P}`, '::1'],
    [`http://[::ffff:127.0.0.2]:${P}`, '127.0.0.2'],
    [`http://[::ffff:7f00:2]:${P}`, '127.0.0.2'],
    [`http://[0:0:0:0:0:ffff:7f00:0001]:${P}`, '127.0.0.1'],
    [`http://2130706434:${P}`, '127.0.0.2'],
    [`  http://127.0.0.2:${P}/x y  `, '127.0.0.2'],
    // IPv4-compatible (deprecated) and NAT64 forms are other addresses, not the IPv4 one
    [`http://[::127.0.0.1]:${P}`, undefined],
    [`http://[::127.0.0.2]:${P}`, undefined],
    [`http://[64:ff9b::127.0.0.1]:${P}`, undefined],
    [`http://[::ffff:0:127.0.0.1]:${P}`, undefined],
    // zone ids are not URL hosts (the WHATWG parser refuses them)
    [`http://[fe80::1%25lo]:${P}`, undefined],
    [`http://[::1%25lo]:${P}`, undefined],
    [`http://[::ffff:127.0.0.1%25lo]:${P}`, undefined],
    [`http://127.0.0.3:${P}`, undefined],
    [`http://[::2]:${P}`, undefined],
    // spaces cannot splice the verdict cache key `${port} ${address} ${audience}`
    [`${P} 127.0.0.1 http://127.0.0.1:${P}`, undefined],
    [`127.0.0.1 http://127.0.0.1:${P}`, undefined],
    [`http://127.0.0.1:${P} 127.0.0.2`, undefined],
  ]
  const hosts = ['127.0.0.1', '127.0.0.2', '::1']
  // Forward and backward over the sockets: the first verdict for an audience is made on a different
  // socket each time, so a cache keyed without the address would show up as a wrong verdict.
  for (const order of [hosts, [...hosts].reverse(), ['127.0.0.2', '::1', '127.0.0.1']]) {
    for (const [audience, owner] of cases) {
      for (const host of order) {
        const got = await m1Status(f.at[host]!, sb, audience)
        assert.equal(got, owner === host ? 'accepted' : 'refused', `${JSON.stringify(audience)} on ${host}`)
      }
    }
  }
  // localhost means 127.0.0.1 / ::1 (what it resolves to), not any loopback address
  for (const host of hosts) assert.equal(await m1Status(f.at[host]!, sb, `http://localhost:${P}`), host === '127.0.0.2' ? 'refused' : 'accepted', host)
})

test('held: the verdict cache cap — 3000 distinct audiences (cache cleared three times) change no verdict, and the cache holds at most 1024 audiences of ≤ 512 characters', async () => {
  const sb = await sandbox(NO_LIMITS)
  const f = await front(sb, ['127.0.0.1', '127.0.0.2'])
  const P = f.port
  const service = f.configured.service
  const at = async (address: string, audience: string): Promise<number> => (await service.handleMessage(m1For(sb, audience), { transport: 'http', localPort: P, localAddress: address })).status
  assert.equal(await at('127.0.0.1', `http://127.0.0.1:${P}`), 200)
  for (let i = 0; i < 3000; i++) {
    // long distinct audiences, half of which name this socket (a cached "true") on a path
    const audience = `http://127.0.0.${1 + (i % 2)}:${P}/${'a'.repeat(460)}${i}`
    assert.equal(await at('127.0.0.1', audience), i % 2 === 0 ? 200 : 400, audience.slice(0, 40))
  }
  assert.equal(await at('127.0.0.2', `http://127.0.0.1:${P}`), 400)
  assert.equal(await at('127.0.0.1', `http://127.0.0.1:${P}`), 200)
  // over the sockets too
  assert.equal(await m1Status(f.at['127.0.0.2']!, sb, `http://127.0.0.1:${P}`), 'refused')
  assert.equal(await m1Status(f.at['127.0.0.1']!, sb, `http://127.0.0.1:${P}`), 'accepted')
})

test('held: dual-stack socket addresses (IPv4 reached through a :: listener) — IPv4-mapped local address, localhost off loopback, zone ids', () => {
  const P = 8080
  // An IPv4 client of a server listening on `::` is seen on local address ::ffff:a.b.c.d.
  assert.equal(namesThisServer(`http://127.0.0.1:${P}`, P, undefined, '::ffff:127.0.0.1'), true)
  assert.equal(namesThisServer(`http://[::1]:${P}`, P, undefined, '::ffff:127.0.0.1'), false)
  assert.equal(namesThisServer(`http://127.0.0.1:${P}`, P, undefined, '::1'), false)
  assert.equal(namesThisServer(`http://[::ffff:127.0.0.1]:${P}`, P, undefined, '::1'), false)
  assert.equal(namesThisServer(`http://[::127.0.0.1]:${P}`, P, undefined, '::ffff:127.0.0.1'), false)
  assert.equal(namesThisServer(`http://[::ffff:127.0.0.1]:${P}`, P, undefined, 'fe80::1%lo'), false)
  assert.equal(namesThisServer(`http://[fe80::1]:${P}`, P, undefined, 'fe80::1%eth0'), true, 'a link-local socket address without its zone')
  // localhost only on loopback, whatever the spelling of the socket's non-loopback address
  for (const local of ['192.0.2.10', '::ffff:192.0.2.10', '::ffff:c000:20a', 'fd00::2', '::', '0.0.0.0', '::ffff:0.0.0.0', '128.0.0.1', '::ffff:128.0.0.1']) {
    assert.equal(namesThisServer(`http://localhost:${P}`, P, undefined, local), false, local)
    assert.equal(namesThisServer(`http://127.0.0.1:${P}`, P, undefined, local), false, local)
  }
  for (const local of ['127.0.0.1', '::ffff:127.0.0.1', '::1', '0:0:0:0:0:0:0:1']) {
    assert.equal(namesThisServer(`http://localhost:${P}`, P, undefined, local), true, local)
  }
  // other loopback addresses are other servers as far as "localhost" goes
  for (const local of ['127.255.255.254', '::ffff:127.0.0.2']) {
    assert.equal(namesThisServer(`http://localhost:${P}`, P, undefined, local), false, local)
  }
  assert.equal(canonicalIp('::ffff:127.0.0.1'), '127.0.0.1')
  assert.equal(canonicalIp('::127.0.0.1'), '[::7f00:1]')
  assert.equal(canonicalIp('[::ffff:127.0.0.1%lo]'), '127.0.0.1')
})

test(
  'finding 1 (fixed): on loopback, localhost and the host name are accepted only on the address they resolve to — a server on 127.0.0.2:P refuses a handshake meant for http://<hostname>:P or http://localhost:P (the server on 127.0.0.1:P)',
  async () => {
    const me = hostname().toLowerCase()
    const addresses = (await import('node:dns')).promises.lookup(me, { all: true })
    const resolved = (await addresses).map((a) => canonicalIp(a.address))
    // On this machine the host name is (typically) 127.0.0.1; a server on 127.0.0.2 is another server.
    const sbA = await sandbox()
    const a = await front(sbA, ['127.0.0.2'])
    if (resolved.includes('127.0.0.2')) return
    assert.equal(await m1Status(a.at['127.0.0.2']!, sbA, `http://${me}:${a.port}`), 'refused', `host name resolves to ${resolved.join(', ')}`)
    assert.equal(await m1Status(a.at['127.0.0.2']!, sbA, `http://localhost:${a.port}`), 'refused', 'localhost resolves to 127.0.0.1 / ::1')
  },
)

// ------------------------------------------------------------------ 2. socket-less paths

test('held: fetchAuthHandler without auth.audience refuses every handshake, machine-looking audiences included', async () => {
  const sb = await sandbox()
  const f = await front(sb, ['127.0.0.1'])
  for (const audience of ['http://localhost', 'http://127.0.0.1', `http://127.0.0.1:${f.port}`, `http://${hostname()}`, 'http://localhost:0', 'https://localhost', 'x']) {
    const res = await f.mcpAuth.fetchAuthHandler(new Request(`http://127.0.0.1:${f.port}/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(m1For(sb, audience)) }))
    assert.equal(res.status, 400, audience)
    const body = (await res.json()) as { error?: { code?: string }; challenge_token?: unknown }
    assert.equal(body.error?.code, 'invalid_message', audience)
    assert.equal(body.challenge_token, undefined)
  }
})

test(
  'finding 2 (fixed): the compat facade (AuthenticationEngine.processAuthRequest) without a socket and without auth.audience refuses a message 1 meant for any other server',
  async () => {
    const sb = await sandbox()
    const config = await loadConfig(sb.serverConfigPath, { env: {} })
    assert.equal(config.auth.audience ?? null, null, 'the default configuration')
    const engine = new AuthenticationEngine(config, { keyPair: sb.serverKey, allowlist: await loadAllowlistFile(sb.serverAllowlistPath) })
    // A relay's audience: the client meant https://evil.example, which forwards the handshake here.
    assert.throws(() => engine.processAuthRequest(m1For(sb, 'https://evil.example')), (e: Error & { code?: string }) => e.code === 'invalid_message')
  },
)

// ------------------------------------------------------------------ 3. removal memory

interface Live {
  sb: Sandbox
  f: Front
  to: Target
  clock: { ms: number }
  original: string
}

const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

async function live(clock?: { ms: number }): Promise<Live> {
  const sb = await sandbox()
  const f = await front(sb, ['127.0.0.1'], clock === undefined ? {} : { clock: () => clock.ms })
  return { sb, f, to: f.at['127.0.0.1']!, clock: clock ?? { ms: Date.now() }, original: await readFile(sb.serverAllowlistPath, 'utf8') }
}

async function call(l: Live, s: ClientSession, at?: number): Promise<Reply> {
  const proof = createRequestProof({ session: s, method: 'POST', target: '/mcp', body: BODY, ...(at === undefined ? {} : { clock: () => at }) })
  return send(l.to, { body: BODY, headers: { authorization: `Bearer ${s.token}`, 'mcp-pki-proof': proof } })
}

const withoutKeys = (original: string): string => JSON.stringify({ ...(JSON.parse(original) as object), keys: {} })

test('held: remove, a broken edit, then the key again (rename-over writes, watcher reloads) — the old session stays over, a fresh one works at once', async () => {
  const l = await live()
  const s = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
  assert.equal((await call(l, s)).status, 200)
  await writeFileAtomic(l.sb.serverAllowlistPath, withoutKeys(l.original))
  await l.f.configured.reloadAllowlist()
  await writeFileAtomic(l.sb.serverAllowlistPath, '{"keys": {')
  await l.f.configured.reloadAllowlist()
  // the same bytes as before the removal: a rename-over back to the original file
  await writeFileAtomic(l.sb.serverAllowlistPath, l.original)
  await l.f.configured.reloadAllowlist()
  const r = await call(l, s)
  assert.equal(r.status, 401, r.text)
  assert.equal(codeOf(r), 'session_revoked')
  const fresh = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
  assert.equal((await call(l, fresh)).status, 200)
})

test('held: the key re-listed as a fingerprint-only entry (the public key to be learned on first use) does not revive the old session', async () => {
  const l = await live()
  const s = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
  await writeFileAtomic(l.sb.serverAllowlistPath, withoutKeys(l.original))
  await l.f.configured.reloadAllowlist()
  const list = JSON.parse(l.original) as { keys: Record<string, Record<string, unknown>> }
  for (const k of Object.values(list.keys)) delete k.public_key
  await writeFileAtomic(l.sb.serverAllowlistPath, JSON.stringify(list))
  await l.f.configured.reloadAllowlist()
  assert.equal(codeOf(await call(l, s)), 'session_revoked')
  const fresh = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
  assert.equal((await call(l, fresh)).status, 200)
})

test(
  'finding 3 (fixed): a fresh session of a re-added key is locked out while the server clock has not passed the removal time (frozen clock, or a clock stepped back)',
  async () => {
    const clock = { ms: Date.now() }
    const l = await live(clock)
    const s = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
    await writeFileAtomic(l.sb.serverAllowlistPath, withoutKeys(l.original))
    await l.f.configured.reloadAllowlist()
    // NTP steps the clock back 10 s; the operator lists the key again.
    clock.ms -= 10_000
    await writeFileAtomic(l.sb.serverAllowlistPath, l.original)
    await l.f.configured.reloadAllowlist()
    assert.equal(codeOf(await call(l, s, clock.ms)), 'session_revoked', 'the old session stays over')
    const fresh = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
    const r = await call(l, fresh, clock.ms)
    assert.equal(r.status, 200, `a session begun after the key came back: ${r.text}`)
    // and once more with a frozen clock: removal, re-add and the new handshake in the same millisecond
    await writeFileAtomic(l.sb.serverAllowlistPath, withoutKeys(l.original))
    await l.f.configured.reloadAllowlist()
    await writeFileAtomic(l.sb.serverAllowlistPath, l.original)
    await l.f.configured.reloadAllowlist()
    assert.equal(codeOf(await call(l, fresh, clock.ms)), 'session_revoked')
    const again = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
    assert.equal((await call(l, again, clock.ms)).status, 200)
  },
)

test(
  'finding 4 (fixed): a server (re)started after a removal refuses the old session token once the key is listed again (the re-added entry is newer than the session)',
  async () => {
    const l = await live()
    const s = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
    await writeFileAtomic(l.sb.serverAllowlistPath, withoutKeys(l.original))
    await l.f.configured.reloadAllowlist()
    // A second instance (same server key, so the same ticket key) starts while the key is removed.
    const f2 = await front(l.sb, ['127.0.0.2'])
    const list = JSON.parse(l.original) as { keys: Record<string, Record<string, unknown>> }
    for (const k of Object.values(list.keys)) k.added_at = new Date().toISOString()
    await writeFileAtomic(l.sb.serverAllowlistPath, JSON.stringify(list))
    await l.f.configured.reloadAllowlist()
    await f2.configured.reloadAllowlist()
    assert.equal(codeOf(await call(l, s)), 'session_revoked', 'the instance that saw the removal')
    const proof = createRequestProof({ session: s, method: 'POST', target: '/mcp', body: BODY })
    const r = await send(f2.at['127.0.0.2']!, { body: BODY, headers: { authorization: `Bearer ${s.token}`, 'mcp-pki-proof': proof } })
    assert.equal(r.status, 401, `the restarted instance: ${r.text}`)
  },
)

// ------------------------------------------------------------------ 4. allowlist file lock

test('finding 5 (fixed): a stale lock plus a breaker file that looks alive (a breaker killed in the last 5 s, or dated in the future by a clock step) made acquireFileLock spin without sleeping and ignore its timeout', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-redteam3-lock-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'allowlist.json')
  await writeFile(path, '{}')
  const deadLock = `999999999 ${hostname()} 1 00\n` // a pid that cannot exist: stale
  // 1. a breaker dated an hour ahead: it is stale too, removed, and the lock is taken
  await writeFile(`${path}.lock`, deadLock)
  await writeFile(`${path}.lock.break`, '')
  const future = new Date(Date.now() + 3600_000)
  await utimes(`${path}.lock.break`, future, future)
  const release = await acquireFileLock(path, { timeoutMs: 3000 })
  await release()
  assert.deepEqual((await readdir(dir)).sort(), ['allowlist.json'])
  // 2. a breaker that just died: the waiter waits (sleeping) and honours its timeout
  await writeFile(`${path}.lock`, deadLock)
  await writeFile(`${path}.lock.break`, '')
  let loops = 0
  const spin = setInterval(() => loops++, 1)
  const outcome = await Promise.race([
    acquireFileLock(path, { timeoutMs: 300 }).then(
      async (rel) => {
        await rel()
        return 'acquired'
      },
      (e: Error & { code?: string }) => e.code,
    ),
    new Promise((r) => setTimeout(() => r('hung past its timeout'), 8000)),
  ])
  clearInterval(spin)
  assert.equal(outcome, 'allowlist_invalid')
  assert.ok(loops > 0, 'the event loop ran while waiting')
  // 3. with the default timeout it gets through once the dead breaker is stale
  await rm(`${path}.lock.break`)
  const old = new Date(Date.now() - 60_000)
  await writeFile(`${path}.lock.break`, '')
  await utimes(`${path}.lock.break`, old, old)
  await (await acquireFileLock(path, { timeoutMs: 2000 }))()
  assert.deepEqual((await readdir(dir)).sort(), ['allowlist.json'])
})

const CLI = resolve(import.meta.dirname, '..', '..', 'dist', 'cli', 'mcp-allowlist.js')

test('held: 3 × 12 concurrent `mcp-allowlist add` processes with a stale lock and a dead breaker planted each round lose no entry and leave no lock', async () => {
  assert.ok(existsSync(CLI), `${CLI} is missing: build first (npx tsc -p tsconfig.json)`)
  const sb = await sandbox()
  const path = sb.serverAllowlistPath
  const fps: string[] = []
  for (let round = 0; round < 3; round++) {
    await writeFile(`${path}.lock`, `999999999 ${hostname()} ${Date.now()} 00\n`)
    await writeFile(`${path}.lock.break`, '')
    const old = new Date(Date.now() - 60_000)
    await utimes(`${path}.lock.break`, old, old)
    const batch = Array.from({ length: 12 }, (_, i) => (round * 16 + i + 1).toString(16).padStart(2, '0').repeat(32))
    fps.push(...batch)
    const runs = await Promise.all(
      batch.map(
        (fp) =>
          new Promise<{ status: number | null; stderr: string }>((r) => {
            const child = spawn(process.execPath, [CLI, 'add', '--config', sb.serverConfigPath, '--fingerprint', fp], { stdio: ['ignore', 'ignore', 'pipe'] })
            let stderr = ''
            child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
            child.on('close', (status) => r({ status, stderr }))
          }),
      ),
    )
    for (const r of runs) assert.equal(r.status, 0, r.stderr)
    const keys = Object.keys((JSON.parse(await readFile(path, 'utf8')) as { keys: Record<string, unknown> }).keys)
    for (const fp of fps) assert.ok(keys.includes(fp), `round ${round}: ${fp.slice(0, 8)} lost`)
    const left = (await readdir(join(path, '..'))).filter((n) => n.includes('.lock'))
    assert.deepEqual(left, [], 'no lock or breaker left')
  }
})

// ------------------------------------------------------------------ 5. formatTimestamp

test('held: formatTimestamp equals Date#toISOString (or throws the same) for edge values and for interleaved seconds', () => {
  const same = (ms: number): void => {
    let want: string
    try {
      want = new Date(ms).toISOString()
    } catch (e) {
      assert.throws(() => formatTimestamp(ms), (e as Error).constructor as new () => Error, String(ms))
      return
    }
    assert.equal(formatTimestamp(ms), want, String(ms))
  }
  const edges = [0, -0, 1, 9, 10, 99, 100, 999, 1000, 1001, -1, -999, -1000, -1001, 0.5, 999.9999, 1000.4, -0.5, 1e15, 253402300799999, 253402300800000, 8.64e15, -8.64e15, 8.64e15 + 1, -62198755200000, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity, 2 ** 53 + 2]
  for (const x of edges) same(x)
  // The cache holds two seconds: walk three seconds round-robin, and back and forth across boundaries.
  const base = Date.UTC(2026, 10, 26, 10, 59, 59, 998)
  const seq: number[] = []
  for (let i = 0; i < 50; i++) seq.push(base + (i % 3) * 1000 + (i % 7), base + 1 - (i % 2) * 2, base + 2, base + 1000 * (i % 2) - 1)
  for (let i = 0; i < 20000; i++) {
    const t = Math.floor(Math.random() * 253402300800000)
    seq.push(t, t + 1000, t - 1, t, t + 1.5, -t)
  }
  for (const x of seq) same(x)
})
