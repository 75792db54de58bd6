/**
 * Allowlist removal: the sessions of a key removed from the allowlist end at its next request and
 * stay over when the key is listed again (by any edit, in any form, on this process or one started
 * later), while a fresh handshake of the re-listed key works at once, whatever the server clock
 * does.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import { writeFileAtomic } from '../../src/allowlist/file-lock.js'
import type { ClientSession } from '../../src/handshake/client-handshake.js'
import type { Sandbox } from '../../src/server/sandbox.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { MCP_BODY, replyCode, send, type Reply, type Target } from './helpers/loopback-http.js'
import { expectRefused, sessionSetup } from './helpers/mcp-session.js'
import { front, handshakeAt, sandbox, type Front } from './helpers/sandbox-servers.js'

interface Live {
  sb: Sandbox
  f: Front
  to: Target
  clock: { ms: number }
  original: string
}

/** An MCP endpoint on 127.0.0.1 (its clock `clock`, or the real one) and its allowlist as first written. */
async function live(clock?: { ms: number }): Promise<Live> {
  const sb = await sandbox()
  const f = await front(sb, ['127.0.0.1'], clock === undefined ? {} : { clock: () => clock.ms })
  return { sb, f, to: f.at['127.0.0.1']!, clock: clock ?? { ms: Date.now() }, original: await readFile(sb.serverAllowlistPath, 'utf8') }
}

/** One MCP request with session `s` (its proof stamped `at`, or now). */
async function call(l: Live, s: ClientSession, at?: number): Promise<Reply> {
  const proof = createRequestProof({ session: s, method: 'POST', target: '/mcp', body: MCP_BODY, ...(at === undefined ? {} : { clock: () => at }) })
  return send(l.to, { body: MCP_BODY, headers: { authorization: `Bearer ${s.token}`, 'mcp-pki-proof': proof } })
}

const withoutKeys = (original: string): string => JSON.stringify({ ...(JSON.parse(original) as object), keys: {} })

// From the red-team round 2 (held).
test('a cached token of a removed key is session_revoked at the next request; the same proof then cannot be replayed', async () => {
  const s = await sessionSetup()
  assert.equal((await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof()) })).status, 200)
  const text = await readFile(s.sb.serverAllowlistPath, 'utf8')
  await writeFile(s.sb.serverAllowlistPath, JSON.stringify({ ...(JSON.parse(text) as object), keys: {} }))
  await s.configured.reloadAllowlist()
  const p = s.proof()
  await expectRefused(s, await send(s.to, { body: MCP_BODY, headers: s.headers(p) }), 401, 'session_revoked', 'removed key')
  assert.equal(s.seen.length, 1)
})

// From the red-team round 2, finding 4 (fixed).
test(
  'a session of a removed key stays over when the key is added again',
  async () => {
    const s = await sessionSetup()
    const original = await readFile(s.sb.serverAllowlistPath, 'utf8')
    await writeFile(s.sb.serverAllowlistPath, JSON.stringify({ ...(JSON.parse(original) as object), keys: {} }))
    await s.configured.reloadAllowlist()
    await expectRefused(s, await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof()) }), 401, 'session_revoked', 'removed')
    // The operator adds the key again (a new entry, added now): the old session must stay dead.
    const list = JSON.parse(original) as { keys: Record<string, Record<string, unknown>> }
    for (const k of Object.values(list.keys)) k.added_at = new Date(Date.now() + 1000).toISOString()
    await writeFile(s.sb.serverAllowlistPath, JSON.stringify(list))
    await s.configured.reloadAllowlist()
    await expectRefused(s, await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof()) }), 401, 'session_revoked', 're-added')
  },
)

// From the red-team round 3 (held).
test('remove, a broken edit, then the key again (rename-over writes, watcher reloads): the old session stays over, a fresh one works at once', async () => {
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
  assert.equal(replyCode(r), 'session_revoked')
  const fresh = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
  assert.equal((await call(l, fresh)).status, 200)
})

// From the red-team round 3 (held).
test('the key re-listed as a fingerprint-only entry (public key learned on first use) does not revive the old session', async () => {
  const l = await live()
  const s = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
  await writeFileAtomic(l.sb.serverAllowlistPath, withoutKeys(l.original))
  await l.f.configured.reloadAllowlist()
  const list = JSON.parse(l.original) as { keys: Record<string, Record<string, unknown>> }
  for (const k of Object.values(list.keys)) delete k.public_key
  await writeFileAtomic(l.sb.serverAllowlistPath, JSON.stringify(list))
  await l.f.configured.reloadAllowlist()
  assert.equal(replyCode(await call(l, s)), 'session_revoked')
  const fresh = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
  assert.equal((await call(l, fresh)).status, 200)
})

// From the red-team round 3, finding 3 (fixed).
test(
  'a re-added key gets working fresh sessions even while the server clock has not passed the removal time (clock stepped back, or frozen); the old session stays over',
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
    assert.equal(replyCode(await call(l, s, clock.ms)), 'session_revoked', 'the old session stays over')
    const fresh = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
    const r = await call(l, fresh, clock.ms)
    assert.equal(r.status, 200, `a session begun after the key came back: ${r.text}`)
    // and once more with a frozen clock: removal, re-add and the new handshake in the same millisecond
    await writeFileAtomic(l.sb.serverAllowlistPath, withoutKeys(l.original))
    await l.f.configured.reloadAllowlist()
    await writeFileAtomic(l.sb.serverAllowlistPath, l.original)
    await l.f.configured.reloadAllowlist()
    assert.equal(replyCode(await call(l, fresh, clock.ms)), 'session_revoked')
    const again = await handshakeAt(l.to, l.sb, `http://127.0.0.1:${l.f.port}/mcp`)
    assert.equal((await call(l, again, clock.ms)).status, 200)
  },
)

// From the red-team round 3, finding 4 (fixed).
test(
  'a server (re)started after a removal refuses the old session token once the key is listed again (the re-added entry is newer than the session)',
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
    assert.equal(replyCode(await call(l, s)), 'session_revoked', 'the instance that saw the removal')
    const proof = createRequestProof({ session: s, method: 'POST', target: '/mcp', body: MCP_BODY })
    const r = await send(f2.at['127.0.0.2']!, { body: MCP_BODY, headers: { authorization: `Bearer ${s.token}`, 'mcp-pki-proof': proof } })
    assert.equal(r.status, 401, `the restarted instance: ${r.text}`)
  },
)
