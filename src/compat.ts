/**
 * The classes the original product description names — `KeyManager`, `ACLManager`,
 * `AuthenticationEngine` — as thin TypeScript facades over the library, for users porting code
 * written against that description. New code can use the functions they wrap directly.
 * @module
 */
import type { KeyObject } from 'node:crypto'
import { createPublicKey } from 'node:crypto'
import type { AllowlistEntry } from './allowlist/types.js'
import type { Allowlist } from './allowlist/allowlist.js'
import { loadAllowlistFile, updateAllowlistFile } from './allowlist/allowlist-file.js'
import type { Config } from './config/types.js'
import { AuthError } from './errors.js'
import { createClientHandshake, createServerTrust, type ClientHandshake, type ClientSession } from './handshake/client-handshake.js'
import { createServerHandshake, type HandshakeContext, type HandshakeResult, type ServerHandshake } from './handshake/server-handshake.js'
import {
  fingerprintOf,
  generateKeyPair,
  keyPairFromPrivateKey,
  rawPublicKey,
  signBytes,
  verifyBytes,
  type Ed25519KeyPair,
} from './keys/key-pair.js'
import { loadPrivateKeyFile, loadPublicKeyFile, writePrivateKeyFile, writePublicKeyFile } from './keys/key-file.js'
import { InMemoryNonceStore } from './nonce/memory-nonce-store.js'
import type { NonceStore } from './nonce/nonce-store.js'
import type { RevocationCheck } from './session/session-verifier.js'
import type { AuthChallengeWire, AuthCompleteWire, AuthRequestWire, AuthResponseWire } from './protocol/messages.js'

/** Key generation, PEM storage, fingerprints, sign/verify (description: `KeyManager`). */
export class KeyManager {
  generateKeyPair(): [privateKey: KeyObject, publicKey: KeyObject] {
    const kp = generateKeyPair()
    return [kp.privateKey, kp.publicKey]
  }
  async savePrivateKey(privateKey: KeyObject, path: string, options: { passphrase?: string; force?: boolean } = {}): Promise<void> {
    await writePrivateKeyFile(path, privateKey, options)
  }
  async savePublicKey(publicKey: KeyObject, path: string, options: { force?: boolean } = {}): Promise<void> {
    await writePublicKeyFile(path, publicKey, options)
  }
  async loadPrivateKey(path: string, options: { passphrase?: string } = {}): Promise<KeyObject> {
    return (await loadPrivateKeyFile(path, options)).privateKey
  }
  async loadPublicKey(path: string): Promise<KeyObject> {
    return (await loadPublicKeyFile(path)).publicKey
  }
  getFingerprint(publicKey: KeyObject): string {
    return fingerprintOf(rawPublicKey(publicKey.type === 'private' ? createPublicKey(publicKey) : publicKey))
  }
  signData(privateKey: KeyObject, data: Uint8Array): Buffer {
    return signBytes(privateKey, data)
  }
  verifySignature(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
    return verifyBytes(publicKey, data, signature)
  }
}

/** A file-backed allowlist (description: `ACLManager`). Every change is written atomically under a lock. */
export class ACLManager {
  private list: Allowlist | undefined
  constructor(readonly allowlistPath: string) {}

  /** Reads the file (created empty when missing). */
  async load(): Promise<Allowlist> {
    this.list = await loadAllowlistFile(this.allowlistPath, { autoCreate: true })
    return this.list
  }
  async addKey(publicKey: KeyObject, metadata: Record<string, unknown> = {}, description?: string): Promise<AllowlistEntry> {
    const raw = rawPublicKey(publicKey)
    let added: AllowlistEntry | undefined
    await updateAllowlistFile(this.allowlistPath, (al) => {
      added = al.add({ publicKeyRaw: raw, metadata, ...(description === undefined ? {} : { description }) })
    })
    await this.load()
    return added!
  }
  async removeKey(publicKeyOrFingerprint: KeyObject | string): Promise<boolean> {
    const fp = typeof publicKeyOrFingerprint === 'string' ? publicKeyOrFingerprint.toLowerCase() : fingerprintOf(rawPublicKey(publicKeyOrFingerprint))
    let removed = false
    await updateAllowlistFile(this.allowlistPath, (al) => {
      removed = al.remove(fp)
    })
    await this.load()
    return removed
  }
  /** `[allowed, metadata]` at this moment (expired entries are not allowed). */
  async isKeyAllowed(publicKey: KeyObject): Promise<[boolean, Readonly<Record<string, unknown>> | undefined]> {
    const list = this.list ?? (await this.load())
    const raw = rawPublicKey(publicKey)
    const found = list.lookup(fingerprintOf(raw), Date.now(), raw)
    return found.status === 'ok' ? [true, found.entry.metadata] : [false, found.status === 'expired' ? found.entry.metadata : undefined]
  }
  async listKeys(): Promise<AllowlistEntry[]> {
    const list = this.list ?? (await this.load())
    return [...list.entries()]
  }
}

export interface AuthenticationEngineOptions {
  /** The key pair of this side (load it with KeyManager or loadPrivateKeyFile). */
  keyPair: Ed25519KeyPair | KeyObject
  /** The peer keys this side accepts (server: client keys; client: server keys). */
  allowlist: Allowlist
  /** Client side: the server URL or name this client means to reach. */
  audience?: string
  /** Client side: pinned server fingerprint. */
  pinnedFingerprint?: string | null
  /** Server side: the replay store (default: in memory, bounded by auth.nonce_cache_size). */
  nonceStore?: NonceStore
  /** Server side: revoked keys (e.g. RedisRevocationList), refused like unlisted ones. */
  revocation?: RevocationCheck
}

/**
 * The four-message protocol for one side (description: `AuthenticationEngine`). A client engine
 * runs one handshake at a time; a server engine is stateless and serves any number.
 */
export class AuthenticationEngine {
  private readonly keyPair: Ed25519KeyPair
  private server: ServerHandshake | undefined
  private client: ClientHandshake | undefined

  constructor(
    readonly config: Config,
    private readonly options: AuthenticationEngineOptions,
  ) {
    this.keyPair = 'fingerprint' in options.keyPair ? options.keyPair : keyPairFromPrivateKey(options.keyPair)
  }

  private serverSide(): ServerHandshake {
    this.server ??= createServerHandshake({
      keyPair: this.keyPair,
      allowlist: this.options.allowlist,
      nonceStore: this.options.nonceStore ?? new InMemoryNonceStore({ maxEntries: this.config.auth.nonce_cache_size }),
      timestampTolerance: this.config.auth.timestamp_tolerance,
      challengeTtl: this.config.auth.challenge_ttl,
      sessionTtl: this.config.auth.session_ttl,
      audience: this.config.auth.audience,
      ...(this.options.revocation === undefined ? {} : { revocation: this.options.revocation }),
    })
    return this.server
  }

  /** Client, step 1. Starts a new handshake. */
  createAuthRequest(): AuthRequestWire {
    if (this.options.audience === undefined) throw new TypeError('a client engine needs options.audience (the server URL)')
    this.client = createClientHandshake({
      keyPair: this.keyPair,
      audience: this.options.audience,
      serverTrust: createServerTrust({ allowlist: this.options.allowlist, pinnedFingerprint: this.options.pinnedFingerprint ?? null }),
      timestampTolerance: this.config.auth.timestamp_tolerance,
    })
    return this.client.start()
  }

  /** Client, step 3. */
  async processChallenge(challenge: unknown): Promise<AuthResponseWire> {
    if (this.client === undefined) throw new AuthError('invalid_message', 'processChallenge before createAuthRequest')
    return this.client.handleChallenge(challenge)
  }

  /** Client, final step: verifies message 4 and returns the session. */
  verifyAuthComplete(complete: unknown): ClientSession {
    if (this.client === undefined) throw new AuthError('invalid_message', 'verifyAuthComplete before createAuthRequest')
    try {
      return this.client.handleComplete(complete)
    } finally {
      this.client = undefined
    }
  }

  /**
   * Server, step 2. `socket` (the local port and address the message came in on) enables the
   * default audience check; without it and without `auth.audience` the engine cannot tell which
   * server a handshake was meant for and refuses it (`invalid_message`): set `auth.audience`.
   */
  processAuthRequest(request: unknown, socket?: HandshakeContext): AuthChallengeWire {
    return this.serverSide().handleRequest(request, this.contextOf(socket))
  }

  /** Server, step 4 (same `socket` rule as {@link processAuthRequest}). */
  async processAuthResponse(response: unknown, socket?: HandshakeContext): Promise<HandshakeResult & { message: AuthCompleteWire }> {
    return this.serverSide().handleResponse(response, this.contextOf(socket))
  }

  /** The socket given, else one that matches no audience (fail closed when none is configured). */
  private contextOf(socket: HandshakeContext | undefined): HandshakeContext {
    return socket?.localPort !== undefined ? socket : { localPort: -1 }
  }
}
