/**
 * A complete in-process handshake set-up for security tests: one server, any number of clients,
 * separate controllable clocks, a session verifier sharing the server's ticket keys and nonce store.
 */
import assert from 'node:assert/strict'
import { AuthError } from '../../src/errors.js'
import { createClientHandshake, createServerTrust, type ClientHandshake, type ClientHandshakeOptions, type ClientSession } from '../../src/handshake/client-handshake.js'
import { createServerHandshake, type HandshakeResult, type ServerHandshake, type ServerHandshakeOptions } from '../../src/handshake/server-handshake.js'
import type { Ed25519KeyPair } from '../../src/keys/key-pair.js'
import type { NonceStore } from '../../src/nonce/nonce-store.js'
import type { AuthChallengeWire, AuthCompleteWire, AuthRequestWire, AuthResponseWire } from '../../src/protocol/messages.js'
import { createSessionVerifier, type SessionVerifier, type SessionVerifierOptions } from '../../src/session/session-verifier.js'
import { makeParties, TestClock, TestNonceStore, type Parties } from './fixtures.js'

export const AUDIENCE = 'http://127.0.0.1:8443/mcp'

/** A deep copy through JSON, as the message would travel. */
export function wire<T>(m: T): T {
  return JSON.parse(JSON.stringify(m)) as T
}

/** The AuthError code `fn` fails with, or 'ok'. Any other exception is rethrown. */
export async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn()
  } catch (err) {
    if (err instanceof AuthError) return err.code
    throw err
  }
  return 'ok'
}

/** Asserts `fn` fails with AuthError `code` and returns the error. */
export async function expectCode(fn: () => unknown, code: string, label = code): Promise<AuthError> {
  try {
    await fn()
  } catch (err) {
    assert.ok(err instanceof AuthError, `${label}: expected AuthError, got ${String(err)}`)
    assert.equal(err.code, code, `${label}: ${err.message}`)
    return err
  }
  assert.fail(`${label}: expected ${code}, but it succeeded`)
}

export interface HarnessOptions {
  parties?: Parties
  nonceStore?: NonceStore
  serverClock?: TestClock
  clientClock?: TestClock
  server?: Partial<ServerHandshakeOptions<Ed25519KeyPair>>
  verifier?: Partial<SessionVerifierOptions>
}

export interface Run {
  m1: AuthRequestWire
  m2: AuthChallengeWire
  m3: AuthResponseWire
  m4: AuthCompleteWire
  result: HandshakeResult
  session: ClientSession
}

export interface Harness {
  p: Parties
  serverClock: TestClock
  clientClock: TestClock
  nonces: NonceStore
  server: ServerHandshake
  verifier: SessionVerifier
  newClient(over?: Partial<ClientHandshakeOptions>): ClientHandshake
  run(client?: ClientHandshake): Promise<Run>
}

export function makeHarness(o: HarnessOptions = {}): Harness {
  const p = o.parties ?? makeParties()
  const serverClock = o.serverClock ?? new TestClock()
  const clientClock = o.clientClock ?? serverClock
  const nonces = o.nonceStore ?? new TestNonceStore(1000, serverClock.now)
  const server = createServerHandshake({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: nonces, clock: serverClock.now, ...o.server })
  const verifier = createSessionVerifier({ ticketKeys: server.ticketKeys, allowlist: p.serverAllowlist, nonceStore: nonces, clock: serverClock.now, ...o.verifier })
  const newClient = (over: Partial<ClientHandshakeOptions> = {}): ClientHandshake =>
    createClientHandshake({
      keyPair: p.client,
      audience: AUDIENCE,
      serverTrust: createServerTrust({ allowlist: p.clientAllowlist, clock: clientClock.now }),
      clock: clientClock.now,
      ...over,
    })
  return {
    p,
    serverClock,
    clientClock,
    nonces,
    server,
    verifier,
    newClient,
    async run(client = newClient()) {
      const m1 = wire(client.start())
      const m2 = wire(server.handleRequest(m1))
      const m3 = wire(await client.handleChallenge(m2))
      const result = await server.handleResponse(m3)
      const m4 = wire(result.message)
      const session = client.handleComplete(m4)
      return { m1, m2, m3, m4, result, session }
    },
  }
}
