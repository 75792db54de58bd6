/**
 * What a client signs with and presents, from the `keys` section of its config: a {@link Signer}
 * (the private key file, or the ssh-agent when `keys.agent` is on) and, when
 * `keys.certificate_path` is set, the OpenSSH certificate for that key.
 *
 * Takes the config's `keys` section structurally (no import of config/), so the dependency
 * direction keys ← config stays one way.
 * @module
 */
import { AuthError } from '../errors.js'
import { loadCertificateFile, loadPrivateKeyFile, loadPublicKeyFile, type LoadPrivateKeyOptions, type LoadedCertificate } from './key-file.js'
import { fingerprintOf } from './key-pair.js'
import { createKeyPairSigner, type Signer } from './signer.js'
import { createSshAgentSigner, type SshAgentOptions } from './ssh-agent.js'

/** The `keys` section of a config (the fields used here). */
export interface ClientKeySettings {
  readonly private_key_path: string
  readonly public_key_path: string
  readonly certificate_path: string | null
  readonly agent: boolean
}

export interface ClientCredentials {
  readonly signer: Signer
  /** Hex SHA-256 of the signing key. */
  readonly fingerprint: string
  /** Where the signature comes from. */
  readonly source: 'key-file' | 'ssh-agent'
  /** The certificate from `keys.certificate_path`, checked to be for the signing key. */
  readonly certificate: LoadedCertificate | undefined
}

export interface LoadClientCredentialsOptions {
  /** For the key file (passphrase, permissions check). */
  privateKey?: LoadPrivateKeyOptions
  /** For the agent (socket path, timeout). */
  agent?: SshAgentOptions
}

/**
 * Loads the client's signer and certificate. With `agent: true` the private key file is not read:
 * the key named by `public_key_path` (or, when that file does not exist, the agent's first ed25519
 * key) must be in the agent.
 * @throws AuthError key_file_invalid / key_file_permissions for files, including a certificate for another key
 * @throws SshAgentError for agent problems
 */
export async function loadClientCredentials(keys: ClientKeySettings, options: LoadClientCredentialsOptions = {}): Promise<ClientCredentials> {
  let signer: Signer
  let source: ClientCredentials['source']
  if (keys.agent) {
    const named = await publicKeyIfPresent(keys.public_key_path)
    signer = await createSshAgentSigner({ ...options.agent, ...(named !== undefined ? { publicKey: named } : {}) })
    source = 'ssh-agent'
  } else {
    signer = createKeyPairSigner(await loadPrivateKeyFile(keys.private_key_path, options.privateKey))
    source = 'key-file'
  }
  const fingerprint = fingerprintOf(signer.publicKey)
  let certificate: LoadedCertificate | undefined
  if (keys.certificate_path !== null) {
    certificate = await loadCertificateFile(keys.certificate_path)
    const subject = fingerprintOf(certificate.certificate.subjectPublicKey)
    if (subject !== fingerprint) {
      throw new AuthError(
        'key_file_invalid',
        `${keys.certificate_path}: this certificate is for key ${subject}, but the client signs with ${fingerprint} (${source}); certify the right key (ssh-keygen -s <ca> -I <id> -n <principals> <key>.pub) or fix keys.certificate_path`,
        { path: keys.certificate_path },
      )
    }
  }
  return { signer, fingerprint, source, certificate }
}

/** The raw key of the public key file `path`; undefined when there is no such file. @throws AuthError for a file that is there but bad */
export async function publicKeyIfPresent(path: string): Promise<Buffer | undefined> {
  try {
    return (await loadPublicKeyFile(path)).publicKeyRaw
  } catch (err) {
    if (err instanceof AuthError && err.code === 'key_file_invalid' && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined
    throw err
  }
}
