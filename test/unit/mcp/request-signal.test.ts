import assert from 'node:assert/strict'
import { getEventListeners } from 'node:events'
import { test } from 'node:test'
import { Allowlist } from '../../../src/allowlist/allowlist.js'
import { createServerTrust } from '../../../src/handshake/client-handshake.js'
import { generateKeyPair } from '../../../src/keys/key-pair.js'
import { createAuthFetch } from '../../../src/mcp/client.js'
import { holdController, REQUESTS_PER_CONTROLLER, requestSignal } from '../../../src/mcp/request-signal.js'
import { InMemoryNonceStore } from '../../../src/nonce/memory-nonce-store.js'
import { createAuthService } from '../../../src/transport/auth-service.js'

test('requestSignal: one listener on the caller signal however many requests; its abort reaches every live request with its reason', () => {
  const parent = new AbortController()
  const controllers = Array.from({ length: 100 }, () => requestSignal(parent.signal)!)
  assert.equal(getEventListeners(parent.signal, 'abort').length, 1)
  assert.ok(controllers.every((c) => !c.signal.aborted))
  const reason = new Error('transport closed')
  parent.abort(reason)
  assert.ok(controllers.every((c) => c.signal.aborted && c.signal.reason === reason))
  assert.equal(requestSignal(parent.signal), undefined, 'an aborted caller signal is passed on as it is')
})

test('holdController keeps the controller reachable from the response and from its body', () => {
  const c = new AbortController()
  const res = new Response('x')
  holdController(res, c)
  const sym = Object.getOwnPropertySymbols(res).find((s) => s.description === 'mcp-pki-auth request controller')!
  assert.equal((res as unknown as Record<symbol, unknown>)[sym], c)
  assert.equal((res.body as unknown as Record<symbol, unknown>)[sym], c)
})

test('requestSignal: a controller serves a bounded number of requests, so undici keeps few listeners on any signal it is given', () => {
  const parent = new AbortController()
  const requests: Request[] = []
  const signals = new Set<AbortSignal>()
  for (let i = 0; i < 10 * REQUESTS_PER_CONTROLLER; i++) {
    const c = requestSignal(parent.signal)!
    signals.add(c.signal)
    // undici adds an abort listener to the given signal per Request, removed only when the Request is collected.
    requests.push(new Request('http://127.0.0.1:9/mcp', { signal: c.signal }))
  }
  assert.equal(signals.size, 10)
  for (const s of signals) assert.ok(getEventListeners(s, 'abort').length <= REQUESTS_PER_CONTROLLER)
  assert.equal(getEventListeners(parent.signal, 'abort').length, 1)
  parent.abort()
  assert.ok(requests.every((r) => r.signal.aborted), 'every request is aborted with the caller')
})

test('createAuthFetch gives fetch a signal of its own, shared by a few consecutive requests, that follows the caller signal', async () => {
  const server = generateKeyPair()
  const client = generateKeyPair()
  const allowlist = new Allowlist()
  allowlist.add({ publicKeyRaw: client.publicKeyRaw })
  const trusted = new Allowlist()
  trusted.add({ publicKeyRaw: server.publicKeyRaw })
  const service = createAuthService({ keyPair: server, allowlist, nonceStore: new InMemoryNonceStore({ maxEntries: 1000 }) })
  const handshakeFetch = async (_url: string, init: { body: string }): Promise<Response> => {
    const r = await service.handleMessage(init.body)
    return new Response(JSON.stringify(r.body), { status: r.status })
  }
  const seen: AbortSignal[] = []
  const fetch = (_input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    seen.push(init!.signal!)
    return Promise.resolve(new Response('{}', { status: 200 }))
  }
  const authFetch = createAuthFetch({ url: 'http://127.0.0.1:9/mcp', keyPair: client, serverTrust: createServerTrust({ allowlist: trusted }), handshakeFetch: handshakeFetch as never, fetch })
  const caller = new AbortController()
  for (let i = 0; i < 20; i++) await authFetch(new URL('http://127.0.0.1:9/mcp'), { method: 'POST', body: '{}', signal: caller.signal })
  assert.equal(seen.length, 20)
  assert.ok(seen.every((s) => s !== caller.signal), 'fetch never gets the caller signal itself')
  assert.equal(new Set(seen).size, Math.ceil(20 / REQUESTS_PER_CONTROLLER), `one signal per ${REQUESTS_PER_CONTROLLER} requests`)
  assert.equal(getEventListeners(caller.signal, 'abort').length, 1)
  caller.abort()
  assert.ok(seen.every((s) => s.aborted), 'closing the caller aborts its requests')
})
