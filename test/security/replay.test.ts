/**
 * Replay protection where production lives (issue 9, findings 1 and 3; docs/PROTOCOL.md §9):
 * a replay memory that began empty — a restarted process, a Redis restarted without persistence or
 * flushed — accepts nothing whose single use was decided before it began, while live sessions
 * survive the restart; and fleet members whose clocks differ by ±3 s cannot re-accept what
 * another member accepted. Each test would pass a replay on mcp-pki/1. And a proof sent on many
 * connections at once is accepted exactly once.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { Redis } from 'ioredis'
import { createServerHandshake } from '../../src/handshake/server-handshake.js'
import { InMemoryNonceStore } from '../../src/nonce/memory-nonce-store.js'
import { RedisNonceStore } from '../../src/nonce/redis-nonce-store.js'
import type { NonceStore } from '../../src/nonce/nonce-store.js'
import { createRequestProof } from '../../src/session/session-token.js'
import { createSessionVerifier } from '../../src/session/session-verifier.js'
import { ticketKeyFrom } from '../../src/session/ticket.js'
import { TestClock } from '../helpers/fixtures.js'
import { AUDIENCE, codeOf, expectCode, makeHarness, wire, type Harness, type Run } from '../helpers/handshake-harness.js'
import { freePort } from '../integration/redis-helpers.js'
import { MCP_BODY, replyCode, send } from './helpers/loopback-http.js'
import { sessionSetup } from './helpers/mcp-session.js'

const BODY = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'

function requestOf(run: Run, proof: string) {
  return { authorization: `Bearer ${run.session.token}`, proof, method: 'POST', target: '/mcp', body: BODY }
}

/** The same server key on a fresh replay memory: what a restart gives (tickets still open). */
function restarted(h: Harness, store: NonceStore) {
  const server = createServerHandshake({ keyPair: h.p.server, allowlist: h.p.serverAllowlist, nonceStore: store, clock: h.serverClock.now })
  const verifier = createSessionVerifier({ ticketKeys: server.ticketKeys, allowlist: h.p.serverAllowlist, nonceStore: store, clock: h.serverClock.now })
  return { server, verifier }
}

test('replay after a restart (in-memory, derived ticket key): message 3 and request proofs accepted before are refused; the live session survives under the new epoch', async () => {
  const clock = new TestClock()
  const before = new InMemoryNonceStore({ maxEntries: 100, clock: clock.now })
  const h = makeHarness({ serverClock: clock, nonceStore: before })
  const run = await h.run()
  const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: h.clientClock.now })
  await h.verifier.verify(requestOf(run, proof))
  before.close()

  const after = restarted(h, new InMemoryNonceStore({ maxEntries: 100, clock: clock.now }))
  // Message 3 of a challenge issued before the restart: refused (was 200 and a second session).
  const err = await expectCode(() => after.server.handleResponse(wire(run.m3)), 'challenge_expired', 'message 3 replayed after the restart')
  assert.match(err.message, /restarted/)
  // The request proof accepted before: refused (proof_stale names the new epoch), and so is any
  // proof naming the old epoch.
  const stale = await expectCode(() => after.verifier.verify(requestOf(run, proof)), 'proof_stale', 'proof replayed after the restart')
  assert.ok(stale.epoch !== undefined && stale.epoch !== run.session.replayEpoch)
  // The honest client takes the new epoch (MCP-PKI-Epoch) and goes on with the same session.
  run.session.replayEpoch = stale.epoch
  const fresh = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: h.clientClock.now })
  assert.equal((await after.verifier.verify(requestOf(run, fresh))).sessionId, run.result.sessionId)
  await expectCode(() => after.verifier.verify(requestOf(run, fresh)), 'replay_detected')
})

test('replay after a restart with a fleet ticket key (auth.ticket_key): the same holds', async () => {
  const ticketKeys = [ticketKeyFrom(Buffer.alloc(32, 9))]
  const clock = new TestClock()
  const first = new InMemoryNonceStore({ maxEntries: 100, clock: clock.now })
  const h = makeHarness({ serverClock: clock, nonceStore: first, server: { ticketKeys }, verifier: { ticketKeys } })
  const run = await h.run()
  const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: clock.now })
  await h.verifier.verify(requestOf(run, proof))
  const second = new InMemoryNonceStore({ maxEntries: 100, clock: clock.now })
  const server = createServerHandshake({ keyPair: h.p.server, allowlist: h.p.serverAllowlist, nonceStore: second, clock: clock.now, ticketKeys })
  const verifier = createSessionVerifier({ ticketKeys, allowlist: h.p.serverAllowlist, nonceStore: second, clock: clock.now })
  await expectCode(() => server.handleResponse(wire(run.m3)), 'challenge_expired')
  await expectCode(() => verifier.verify(requestOf(run, proof)), 'proof_stale')
  first.close()
  second.close()
})

/** A private redis-server on a free port (this test restarts it; the shared one is never touched). */
async function privateRedis(): Promise<{ url: string; restart(): Promise<void>; stop(): Promise<void> }> {
  const port = await freePort()
  let proc = start()
  function start() {
    return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  }
  async function ready(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      const r = new Redis(`redis://127.0.0.1:${port}`, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
      r.on('error', () => undefined)
      try {
        await r.connect()
        await r.ping()
        r.disconnect()
        return
      } catch {
        r.disconnect()
        await new Promise((res) => setTimeout(res, 50))
      }
    }
    throw new Error('private redis did not start')
  }
  async function stop(): Promise<void> {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    const exited = new Promise((r) => proc.once('exit', r))
    proc.kill('SIGKILL')
    await exited
  }
  await ready()
  return {
    url: `redis://127.0.0.1:${port}`,
    async restart() {
      await stop()
      proc = start()
      await ready()
    },
    stop,
  }
}

async function settle(store: RedisNonceStore): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await store.ready(200)
      return
    } catch {
      await new Promise((r) => setTimeout(r, 50))
    }
  }
}

test('replay after Redis restarted without persistence, or was flushed: nothing accepted before is accepted again', async (t) => {
  const redis = await privateRedis()
  t.after(() => redis.stop())
  const clock = new TestClock()
  const store = new RedisNonceStore({ redis: redis.url, keyPrefix: 'rp:', clock: clock.now })
  t.after(() => store.close())
  await store.ready()
  const h = makeHarness({ serverClock: clock, nonceStore: store })
  const run = await h.run()
  const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: clock.now })
  await h.verifier.verify(requestOf(run, proof))
  const pending = h.newClient()
  const pendingM3 = wire(await pending.handleChallenge(wire(h.server.handleRequest(wire(pending.start())))))

  await redis.restart()
  await settle(store)
  clock.advance(13) // as in the finding: 13 s later, still inside the proof window
  await expectCode(() => h.verifier.verify(requestOf(run, proof)), 'proof_stale', 'proof after the Redis restart')
  await expectCode(() => h.server.handleResponse(wire(run.m3)), 'challenge_expired', 'used message 3 after the Redis restart')
  await expectCode(() => h.server.handleResponse(pendingM3), 'challenge_expired', 'a challenge issued before the restart')
  // New handshakes work at once, and the old session goes on under the new epoch.
  const again = await h.run()
  assert.equal(again.session.replayEpoch, store.epoch())
  run.session.replayEpoch = store.epoch()
  const next = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, clock: clock.now })
  await h.verifier.verify(requestOf(run, next))

  // FLUSHALL (or the epoch key evicted) has the same effect.
  const admin = new Redis(redis.url)
  t.after(() => admin.quit())
  await admin.flushall()
  await expectCode(() => h.verifier.verify(requestOf(run, next)), 'proof_stale', 'proof after FLUSHALL')
})

test('fleet members whose clocks differ by ±3 s: what one accepted, the other refuses until no member can accept it any more', async (t) => {
  const prefix = `test:skew:${process.pid}:${Date.now()}:`
  const url = 'redis://127.0.0.1:6379'
  // Real clocks (Redis TTLs run in real time), member B three seconds behind member A.
  const ahead = { now: (): number => Date.now() }
  const behind = { now: (): number => Date.now() - 3_000 }
  const storeA = new RedisNonceStore({ redis: url, keyPrefix: prefix, clock: ahead.now, clockSkewMs: 3_000 })
  const storeB = new RedisNonceStore({ redis: url, keyPrefix: prefix, clock: behind.now, clockSkewMs: 3_000 })
  t.after(async () => {
    await storeA.close()
    await storeB.close()
  })
  await storeA.ready()
  await storeB.ready()
  const ticketKeys = [ticketKeyFrom(Buffer.alloc(32, 3))]
  const h = makeHarness({ serverClock: ahead as TestClock, nonceStore: storeA, server: { ticketKeys, challengeTtl: 2 }, verifier: { ticketKeys, proofWindow: 2 } })
  const memberB = {
    server: createServerHandshake({ keyPair: h.p.server, allowlist: h.p.serverAllowlist, nonceStore: storeB, clock: behind.now, ticketKeys, challengeTtl: 2 }),
    verifier: createSessionVerifier({ ticketKeys, allowlist: h.p.serverAllowlist, nonceStore: storeB, clock: behind.now, proofWindow: 2 }),
  }
  const run = await h.run() // message 3 accepted by member A (clock ahead)
  const proof = createRequestProof({ session: run.session, method: 'POST', target: '/mcp', body: BODY, timestamp: ahead.now() })
  await h.verifier.verify(requestOf(run, proof)) // proof accepted by member A
  // Real time passes beyond what a TTL on A's clock alone would have kept (window 2 s + 1 ms);
  // by B's clock (3 s behind) both are still inside their windows until 5 s have passed.
  await new Promise((r) => setTimeout(r, 2_300))
  // Member B, 3 s behind, still finds both inside their windows by its clock, and must refuse them.
  assert.equal(await codeOf(() => memberB.verifier.verify(requestOf(run, proof))), 'replay_detected', 'proof at the skewed member')
  assert.equal(await codeOf(() => memberB.server.handleResponse(wire(run.m3))), 'replay_detected', 'message 3 at the skewed member')
  // Both members agree on the epoch (one Redis).
  assert.equal(storeA.epoch(), storeB.epoch())
  void AUDIENCE
})

// From the red-team round 2 (held).
test('the same proof sent on 8 connections at once is accepted exactly once', async () => {
  const s = await sessionSetup()
  const proof = s.proof()
  const replies = await Promise.all(Array.from({ length: 8 }, () => send(s.to, { body: MCP_BODY, headers: s.headers(proof) })))
  const statuses = replies.map((r) => `${r.status}:${replyCode(r) ?? ''}`).sort()
  assert.deepEqual(statuses, ['200:', ...Array.from({ length: 7 }, () => '401:replay_detected')])
  assert.equal(s.seen.length, 1)
})
