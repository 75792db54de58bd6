/** Small in-test stand-ins for the allowlist and nonce store, plus a controllable clock. */
import { randomBytes, type KeyObject } from 'node:crypto'
import type { AllowlistEntry, KeyLookup, LookupResult } from '../../src/allowlist/types.js'
import { fingerprintOf, generateKeyPair, publicKeyFromRaw, type Ed25519KeyPair } from '../../src/keys/key-pair.js'
import type { NonceResult, NonceStore } from '../../src/nonce/nonce-store.js'

export class TestAllowlist implements KeyLookup {
  readonly entries = new Map<string, { entry: AllowlistEntry; key: KeyObject }>()
  add(raw: Buffer, metadata: Record<string, unknown> = {}, notAfter?: number): string {
    const fingerprint = fingerprintOf(raw)
    this.entries.set(fingerprint, {
      entry: { fingerprint, publicKeyRaw: raw, description: undefined, metadata, addedAt: new Date(0).toISOString(), addedBy: 'test', notAfter },
      key: publicKeyFromRaw(raw),
    })
    return fingerprint
  }
  remove(fp: string): void {
    this.entries.delete(fp)
  }
  lookup(fingerprint: string, now: number): LookupResult {
    const e = this.entries.get(fingerprint)
    if (e === undefined) return { status: 'unknown' }
    if (e.entry.notAfter !== undefined && e.entry.notAfter <= now) return { status: 'expired', entry: e.entry }
    return { status: 'ok', entry: e.entry, publicKey: e.key }
  }
}

export class TestNonceStore implements NonceStore {
  readonly map = new Map<string, number>()
  /** This memory's replay epoch (new per instance, as a restarted process's). */
  epochText = randomBytes(8).toString('base64url')
  /** When this memory began (default: long before any proof; a test of restarts sets it). */
  epochStartedAt = -Infinity
  constructor(
    readonly max = 1000,
    readonly now: () => number = Date.now,
  ) {}
  epoch(): string {
    return this.epochText
  }
  epochSince(): number {
    return this.epochStartedAt
  }
  checkSequence(sessionId: string, sequence: number, forgetAt: number, epoch: string): NonceResult {
    return this.checkAndInsert(`q:${sessionId}:${sequence}`, forgetAt, epoch)
  }
  checkAndInsert(nonce: string, expiresAt: number, epoch?: string): NonceResult {
    if (epoch !== undefined && epoch !== this.epochText) return 'stale'
    const t = this.now()
    const e = this.map.get(nonce)
    if (e !== undefined && e > t) return 'replay'
    if (e === undefined && this.map.size >= this.max) return 'full'
    this.map.set(nonce, expiresAt)
    return 'ok'
  }
  size(): number {
    return this.map.size
  }
}

/**
 * A clock a test moves by hand. By default an hour ahead of the real one (whole seconds), never a
 * fixed date: parts that keep real time (a store on Date.now, `added_at` stamps) must not see the
 * test's "now" fall behind them as the calendar moves on (a fixed date once made replays pass).
 */
export class TestClock {
  constructor(public ms = Math.floor(Date.now() / 1000) * 1000 + 3_600_000) {}
  readonly now = (): number => this.ms
  advance(seconds: number): void {
    this.ms += seconds * 1000
  }
}

export interface Parties {
  server: Ed25519KeyPair
  client: Ed25519KeyPair
  serverAllowlist: TestAllowlist
  clientAllowlist: TestAllowlist
}

export function makeParties(): Parties {
  const server = generateKeyPair()
  const client = generateKeyPair()
  const serverAllowlist = new TestAllowlist()
  const clientAllowlist = new TestAllowlist()
  serverAllowlist.add(client.publicKeyRaw, { role: 'trusted_client', org: 'example_org' })
  clientAllowlist.add(server.publicKeyRaw, { role: 'mcp_server' })
  return { server, client, serverAllowlist, clientAllowlist }
}
