/**
 * The client's key as every config-driven client uses it (mcp-auth-test, mcp-pki-proxy,
 * createAuthFetchFromConfig, authenticateWithConfig): the private key file, or — with
 * `keys.agent: true` — a key held by ssh-agent (no private key file needed), plus the OpenSSH
 * certificate of `keys.certificate_path` when set.
 * @module
 */
import type { Config } from '../config/types.js'
import { AuthError } from '../errors.js'
import { loadClientCredentials } from '../keys/client-credentials.js'
import { loadCertificateFile, loadPrivateKeyFile } from '../keys/key-file.js'
import { fingerprintOf, type Ed25519KeyPair } from '../keys/key-pair.js'
import type { Signer } from '../keys/signer.js'
import { SshAgentError } from '../keys/ssh-agent.js'

/** What a handshake signs with: a key pair in this process, or a signer (ssh-agent); and the certificate, if any. */
export interface ClientKeyOptions {
  keyPair?: Ed25519KeyPair
  signer?: Signer
  /** OpenSSH certificate blob for the key, presented in message 3. */
  certificate?: Uint8Array
}

/** Only the fields that are set (for spreading into handshake options under exactOptionalPropertyTypes). */
export function clientKeyOptions(k: ClientKeyOptions): ClientKeyOptions {
  return {
    ...(k.keyPair === undefined ? {} : { keyPair: k.keyPair }),
    ...(k.signer === undefined ? {} : { signer: k.signer }),
    ...(k.certificate === undefined ? {} : { certificate: k.certificate }),
  }
}

/**
 * Loads the client key named by the config. Agent problems become AuthError `key_file_invalid`
 * whose message says what is wrong and how to fix it (no SSH_AUTH_SOCK, key not in the agent …).
 */
export async function clientKeyFromConfig(config: Config): Promise<ClientKeyOptions & { fingerprint: string }> {
  const keys = config.keys
  if (!keys.agent) {
    const keyPair = await loadPrivateKeyFile(keys.private_key_path)
    if (keys.certificate_path === null) return { keyPair, fingerprint: keyPair.fingerprint }
    const cert = await loadCertificateFile(keys.certificate_path)
    const subject = fingerprintOf(cert.certificate.subjectPublicKey)
    if (subject !== keyPair.fingerprint) {
      throw new AuthError(
        'key_file_invalid',
        `${keys.certificate_path}: this certificate is for key ${subject}, but the client key is ${keyPair.fingerprint}; certify the right key (ssh-keygen -s <ca> -I <id> -n <principals> ${keys.public_key_path}) or fix keys.certificate_path`,
        { path: keys.certificate_path },
      )
    }
    return { keyPair, certificate: cert.blob, fingerprint: keyPair.fingerprint }
  }
  try {
    const creds = await loadClientCredentials(keys)
    const agent = creds.signer
    const signer: Signer = {
      publicKey: agent.publicKey,
      sign: (data) => agent.sign(data).catch((err: unknown) => Promise.reject(agentProblem(err))),
    }
    return { signer, fingerprint: creds.fingerprint, ...(creds.certificate === undefined ? {} : { certificate: creds.certificate.blob }) }
  } catch (err) {
    throw agentProblem(err)
  }
}

/** An SshAgentError as an AuthError with its hint; anything else unchanged. */
export function agentProblem(err: unknown): unknown {
  if (!(err instanceof SshAgentError)) return err
  return new AuthError('key_file_invalid', `${err.message}${err.hint === undefined ? '' : `; ${err.hint}`}`, { cause: err })
}
