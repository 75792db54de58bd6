/**
 * A minimal ssh-agent client (draft-miller-ssh-agent): list identities and have the agent sign
 * with an ed25519 key, so the private key never enters this process. Works with OpenSSH's
 * `ssh-agent`, and with agents that front hardware or vaults (YubiKey via gpg-agent/yubikey-agent,
 * 1Password, Secretive) as long as they hold an **ed25519** key.
 *
 * Every reply is size-limited ({@link MAX_AGENT_REPLY}) and parsed strictly; every request has a
 * timeout (long by default: an agent may ask the user to confirm, `ssh-add -c`). One connection
 * per request, so a stalled or restarted agent never poisons a later call; or, with `keepAlive`
 * (a server signing every handshake), one kept open (ssh-agent-transport.ts).
 *
 * Failures are {@link SshAgentError}s with a stable `code` and a `hint` saying what to do.
 * @module
 */
import { printable } from '../internal/text.js'
import { weakEd25519KeyReason } from './point-check.js'
import { fingerprintOf, publicKeyFromRaw, verifyBytes } from './key-pair.js'
import { OPENSSH_ED25519_CERT_TYPE, parseOpenSshCertificate } from './openssh-cert.js'
import type { Signer } from './signer.js'
import { SshAgentError, protocolError } from './ssh-agent-error.js'
import { agentRequest, createAgentConnection } from './ssh-agent-transport.js'
import { SshReader, SshWireError, ed25519KeyBlob, sshString, sshU32 } from './ssh-wire.js'

export type { Signer } from './signer.js'
export { SshAgentError, type SshAgentErrorCode } from './ssh-agent-error.js'
export { MAX_AGENT_REPLY } from './ssh-agent-transport.js'

/** Environment variable naming the agent's socket. */
export const SSH_AUTH_SOCK_ENV = 'SSH_AUTH_SOCK'
/** Default per-request timeout: long enough for a person to answer a confirmation prompt. */
export const DEFAULT_AGENT_TIMEOUT_MS = 30_000

const SSH_AGENT_FAILURE = 5
const SSH_AGENTC_REQUEST_IDENTITIES = 11
const SSH_AGENT_IDENTITIES_ANSWER = 12
const SSH_AGENTC_SIGN_REQUEST = 13
const SSH_AGENT_SIGN_RESPONSE = 14
const MAX_IDENTITIES = 4096

/** One key the agent holds. */
export interface AgentIdentity {
  /** SSH key type of the blob (`ssh-ed25519`, `ssh-ed25519-cert-v01@openssh.com`, `ssh-rsa` …). */
  readonly type: string
  /** The key blob as the agent sent it (what a sign request names). */
  readonly blob: Buffer
  readonly comment: string
  /** Raw ed25519 key for `ssh-ed25519` and ed25519 certificates; undefined for other types. */
  readonly ed25519PublicKey: Buffer | undefined
}

export interface SshAgentOptions {
  /** The agent's socket; default $SSH_AUTH_SOCK. */
  socketPath?: string
  /** Per-request timeout in ms (default {@link DEFAULT_AGENT_TIMEOUT_MS}). */
  timeoutMs?: number
}

export interface SshAgentSignerOptions extends SshAgentOptions {
  /** Raw 32-byte ed25519 key to use; default: the first ed25519 key the agent lists. */
  publicKey?: Uint8Array
  /**
   * Sign over one connection kept open (requests one at a time) instead of one per signature: for
   * a signer used all the time, such as a server's, it costs far less CPU per signature. Default false.
   */
  keepAlive?: boolean
}

/** A {@link Signer} backed by an agent key. */
export interface SshAgentSigner extends Signer {
  readonly publicKey: Buffer
  /** Hex SHA-256 of the raw public key. */
  readonly fingerprint: string
  /** The agent's comment for the key (usually the key file's path or comment). */
  readonly comment: string
  /** An OpenSSH certificate for this key that the agent also holds (ssh-add loads `<key>-cert.pub`), if any. */
  readonly certificate: Buffer | undefined
  readonly socketPath: string
}

/** Lists the agent's identities. @throws SshAgentError */
export async function listSshAgentIdentities(options: SshAgentOptions = {}): Promise<AgentIdentity[]> {
  const { socketPath, timeoutMs } = resolveOptions(options)
  const reply = await agentRequest(socketPath, Buffer.from([SSH_AGENTC_REQUEST_IDENTITIES]), timeoutMs)
  return parseIdentities(reply)
}

/**
 * Connects to the agent and picks the ed25519 key named by `publicKey` (or the first one).
 * Checks once, up front, that the key is there; each `sign` asks the agent again.
 *
 * @example
 * const signer = await createSshAgentSigner({ publicKey: loadedPublicKey.publicKeyRaw })
 * const signature = await signer.sign(transcript)
 * @throws SshAgentError agent_not_configured, agent_unreachable, agent_timeout, agent_protocol_error, agent_key_not_found
 * @throws TypeError for bad options
 */
export async function createSshAgentSigner(options: SshAgentSignerOptions = {}): Promise<SshAgentSigner> {
  const { socketPath, timeoutMs } = resolveOptions(options)
  if (options.publicKey !== undefined && (!(options.publicKey instanceof Uint8Array) || options.publicKey.byteLength !== 32)) {
    throw new TypeError('publicKey must be a raw 32-byte ed25519 public key')
  }
  const identities = await listSshAgentIdentities({ socketPath, timeoutMs })
  const wanted = options.publicKey === undefined ? undefined : Buffer.from(options.publicKey)
  const matches = identities.filter((i) => i.ed25519PublicKey !== undefined && (wanted === undefined || i.ed25519PublicKey.equals(wanted)))
  const plain = matches.find((i) => i.type === 'ssh-ed25519')
  const chosen = plain ?? matches[0]
  if (chosen === undefined) throw keyNotFound(identities, wanted)
  const publicKey = Buffer.from(chosen.ed25519PublicKey!)
  const certificate = matches.find((i) => i.type === OPENSSH_ED25519_CERT_TYPE && i.ed25519PublicKey!.equals(publicKey))?.blob
  const keyObject = publicKeyFromRaw(publicKey)
  const fingerprint = fingerprintOf(publicKey)
  const connection = options.keepAlive === true ? createAgentConnection(socketPath, timeoutMs) : undefined
  const send = (request: Buffer): Promise<Buffer> => (connection === undefined ? agentRequest(socketPath, request, timeoutMs) : connection.request(request))
  return {
    publicKey,
    fingerprint,
    comment: chosen.comment,
    certificate,
    socketPath,
    async sign(data: Uint8Array): Promise<Uint8Array> {
      const request = Buffer.concat([Buffer.from([SSH_AGENTC_SIGN_REQUEST]), sshString(chosen.blob), sshString(data), sshU32(0)])
      const reply = await send(request)
      const signature = parseSignResponse(reply, fingerprint)
      // An agent is outside our trust boundary: a signature that does not verify is its fault, not ours.
      if (!verifyBytes(keyObject, data, signature)) {
        throw new SshAgentError('agent_protocol_error', `the agent at ${socketPath} returned a signature that does not verify with key ${fingerprint}`)
      }
      return signature
    },
  }
}

function resolveOptions(options: SshAgentOptions): { socketPath: string; timeoutMs: number } {
  if (options === null || typeof options !== 'object') throw new TypeError('options must be an object')
  const timeoutMs = options.timeoutMs ?? DEFAULT_AGENT_TIMEOUT_MS
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new TypeError('timeoutMs must be a positive number')
  const socketPath = options.socketPath ?? process.env[SSH_AUTH_SOCK_ENV]
  if (socketPath === undefined || socketPath === '') {
    throw new SshAgentError(
      'agent_not_configured',
      `keys.agent is on but ${SSH_AUTH_SOCK_ENV} is not set: no ssh-agent to sign with`,
      'start one with `eval "$(ssh-agent)"` and load your key with `ssh-add <key>`, or turn keys.agent off to use the key file',
    )
  }
  return { socketPath, timeoutMs }
}

function keyNotFound(identities: AgentIdentity[], wanted: Buffer | undefined): SshAgentError {
  const held = identities.length === 0 ? 'holds no keys (or is locked)' : `holds ${identities.length} key${identities.length === 1 ? '' : 's'}, none of them ${wanted ? 'this one' : 'ed25519'}`
  const what = wanted ? `the key ${fingerprintOf(wanted)}` : 'an ed25519 key'
  return new SshAgentError(
    'agent_key_not_found',
    `the ssh-agent ${held}; it cannot sign with ${what}`,
    identities.length === 0
      ? 'add the key with `ssh-add <private key file>` (if the agent is locked, unlock it with `ssh-add -X`)'
      : 'add the key with `ssh-add <private key file>`; `ssh-add -l` lists what the agent holds',
  )
}

// ---------------------------------------------------------------------------------------------
// Wire

function parseIdentities(reply: Buffer): AgentIdentity[] {
  try {
    const r = new SshReader(reply)
    const type = r.u8()
    if (type === SSH_AGENT_FAILURE) throw new SshAgentError('agent_refused', 'the ssh-agent refused to list its keys')
    if (type !== SSH_AGENT_IDENTITIES_ANSWER) throw protocolError(`expected an identities answer (12), got message type ${type}`)
    const count = r.u32()
    if (count > MAX_IDENTITIES) throw protocolError(`the agent claims ${count} keys (limit ${MAX_IDENTITIES})`)
    const out: AgentIdentity[] = []
    for (let i = 0; i < count; i++) {
      const blob = Buffer.from(r.string('key blob'))
      const comment = printable(r.string('comment').toString('utf8'))
      out.push(describeIdentity(blob, comment))
    }
    if (!r.atEnd()) throw protocolError('trailing bytes after the identities answer')
    return out
  } catch (err) {
    if (err instanceof SshWireError) throw protocolError(err.message)
    throw err
  }
}

function describeIdentity(blob: Buffer, comment: string): AgentIdentity {
  let type: string
  try {
    type = new SshReader(blob).string().toString('latin1')
  } catch {
    return { type: '', blob, comment, ed25519PublicKey: undefined }
  }
  let key: Buffer | undefined
  if (type === 'ssh-ed25519') {
    const r = new SshReader(blob)
    try {
      r.string()
      const raw = r.string()
      if (r.atEnd() && weakEd25519KeyReason(raw) === undefined) key = Buffer.from(raw)
    } catch {
      key = undefined
    }
    if (key !== undefined && !ed25519KeyBlob(key).equals(blob)) key = undefined
  } else if (type === OPENSSH_ED25519_CERT_TYPE) {
    try {
      key = parseOpenSshCertificate(blob).subjectPublicKey
    } catch {
      key = undefined
    }
  }
  return { type: printable(type.slice(0, 64)), blob, comment, ed25519PublicKey: key }
}

function parseSignResponse(reply: Buffer, fingerprint: string): Buffer {
  try {
    const r = new SshReader(reply)
    const type = r.u8()
    if (type === SSH_AGENT_FAILURE) {
      throw new SshAgentError(
        'agent_refused',
        `the ssh-agent refused to sign with key ${fingerprint}`,
        'the agent may be locked (unlock: `ssh-add -X`), the key removed (`ssh-add -l` lists what it holds), or a confirmation (`ssh-add -c`) declined',
      )
    }
    if (type !== SSH_AGENT_SIGN_RESPONSE) throw protocolError(`expected a sign response (14), got message type ${type}`)
    const sigBlob = r.string('signature')
    if (!r.atEnd()) throw protocolError('trailing bytes after the sign response')
    const s = new SshReader(sigBlob)
    const alg = s.string('signature algorithm').toString('latin1')
    if (alg !== 'ssh-ed25519') throw protocolError(`expected an ssh-ed25519 signature, got "${printable(alg.slice(0, 64))}"`)
    const sig = Buffer.from(s.string('signature'))
    if (sig.length !== 64 || !s.atEnd()) throw protocolError(`malformed ed25519 signature (${sig.length} bytes)`)
    return sig
  } catch (err) {
    if (err instanceof SshWireError) throw protocolError(err.message)
    throw err
  }
}
