/**
 * `keys.agent: true` on a server: the server key stays in the ssh-agent on $SSH_AUTH_SOCK and
 * every handshake signature (message 2, a rotation's `server_key_update`) is made there. The key
 * is the one `keys.public_key_path` names (or, when that file does not exist, the agent's first
 * ed25519 key); the private key file is not read.
 *
 * Start-up problems (no SSH_AUTH_SOCK, no agent there, the key not in it) are AuthErrors
 * `key_file_invalid` that say how to fix them. At run time each signature asks the agent again,
 * with a short timeout: an agent that died or refuses fails that handshake closed (audited as
 * `internal_error` with the agent's reason), and everything else keeps working.
 * @module
 */
import { AuthError } from '../errors.js'
import { publicKeyIfPresent } from '../keys/client-credentials.js'
import { loadPublicKeyFile } from '../keys/key-file.js'
import { createSshAgentSigner, SshAgentError, type SshAgentOptions } from '../keys/ssh-agent.js'
import { externalServerKey, type ExternalServerKey } from '../handshake/server-key.js'
import type { ServerKeyLoader } from './server-keys.js'

/**
 * How long a server waits for one signature. No person confirms a server's signatures
 * (`ssh-add -c` makes no sense there), so a slow answer means a stuck agent.
 */
export const SERVER_AGENT_TIMEOUT_MS = 5_000

export interface AgentServerKey {
  key: ExternalServerKey
  /** Loads a rotation's public key file through the same agent (the socket found at start). */
  load: ServerKeyLoader
}

/** The server key of a `keys.agent` config. @throws AuthError key_file_invalid */
export async function agentServerKey(publicKeyPath: string, options: SshAgentOptions = {}): Promise<AgentServerKey> {
  const named = await publicKeyIfPresent(publicKeyPath)
  const { key, socketPath } = await agentKeyFor(named, options, publicKeyPath)
  const timeoutMs = options.timeoutMs
  return { key, load: (path) => agentServerKeyOfFile(path, { socketPath, ...(timeoutMs === undefined ? {} : { timeoutMs }) }) }
}

/**
 * The key of the public key file `path` (which must exist), in the agent: what a rotation's
 * `.next` / `.previous` public key file names when the server key is in an agent.
 */
export async function agentServerKeyOfFile(path: string, options: SshAgentOptions = {}): Promise<ExternalServerKey> {
  const { publicKeyRaw } = await loadPublicKeyFile(path)
  return (await agentKeyFor(publicKeyRaw, options, path)).key
}

async function agentKeyFor(publicKey: Buffer | undefined, options: SshAgentOptions, path: string): Promise<{ key: ExternalServerKey; socketPath: string }> {
  try {
    // One connection kept open: a server signs every handshake (ssh-agent-transport.ts).
    const signer = await createSshAgentSigner({ timeoutMs: SERVER_AGENT_TIMEOUT_MS, keepAlive: true, ...options, ...(publicKey === undefined ? {} : { publicKey }) })
    return { key: externalServerKey(signer), socketPath: signer.socketPath }
  } catch (err) {
    if (!(err instanceof SshAgentError)) throw err
    const which = publicKey === undefined ? `(${path} does not exist, so any ed25519 key would do)` : `(the key of ${path})`
    throw new AuthError('key_file_invalid', `server key ${which}: ${err.message}${err.hint === undefined ? '' : `; ${err.hint}`}`, { cause: err, path })
  }
}
