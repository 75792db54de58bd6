/**
 * `mcp-config-validate --check-keys` for `keys.certificate_path` and `keys.agent`: the certificate
 * parses and is for the configured key, is inside its validity window; the agent is reachable and
 * holds the key.
 * @module
 */
import { printable } from '../../internal/text.js'
import { loadCertificateFile } from '../../keys/key-file.js'
import { fingerprintOf } from '../../keys/key-pair.js'
import { createSshAgentSigner, SshAgentError } from '../../keys/ssh-agent.js'

export interface KeySourceFindings {
  errors: string[]
  warnings: string[]
  info: string[]
}

/** Checks the certificate against `fingerprint` (the configured key's, when known). */
export async function checkCertificate(path: string, fingerprint: string | null, now: number, out: KeySourceFindings): Promise<void> {
  let loaded
  try {
    loaded = await loadCertificateFile(path)
  } catch (err) {
    out.errors.push(`keys.certificate_path: ${err instanceof Error ? err.message : String(err)}`)
    return
  }
  const cert = loaded.certificate
  const subject = fingerprintOf(cert.subjectPublicKey)
  if (fingerprint !== null && subject !== fingerprint) {
    out.errors.push(`keys.certificate_path: ${path} is a certificate for key ${subject.slice(0, 16)}…, not for the configured key ${fingerprint.slice(0, 16)}…`)
  }
  const nowSeconds = BigInt(Math.floor(now / 1000))
  out.info.push(`keys.certificate_path: a ${cert.type} certificate (a client presents a user certificate, a server a host certificate: ssh-keygen -h)`)
  if (nowSeconds >= cert.validBeforeSeconds) out.errors.push(`keys.certificate_path: ${path} has expired (renew it: ssh-keygen -s <ca> -I <id> -n <principals> -V +8h <key>.pub)`)
  else if (nowSeconds < cert.validAfterSeconds) out.warnings.push(`keys.certificate_path: ${path} is not valid yet`)
  const principals = cert.principals.length === 0 ? '(any)' : cert.principals.map(printable).join(',')
  out.info.push(`certificate: key id "${printable(cert.keyId)}", serial ${cert.serial}, principals ${principals}, CA ${cert.caPublicKey ? fingerprintOf(cert.caPublicKey).slice(0, 16) + '…' : cert.caKeyType}`)
}

/** Checks that the agent on $SSH_AUTH_SOCK answers and holds the key (`publicKey`, or any ed25519 key). */
export async function checkAgent(publicKey: Uint8Array | undefined, out: KeySourceFindings): Promise<string | undefined> {
  try {
    const signer = await createSshAgentSigner({ timeoutMs: 5000, ...(publicKey !== undefined ? { publicKey } : {}) })
    out.info.push(`ssh-agent at ${signer.socketPath} holds key ${signer.fingerprint.slice(0, 16)}… (${printable(signer.comment)})`)
    return signer.fingerprint
  } catch (err) {
    if (!(err instanceof SshAgentError)) throw err
    out.errors.push(`keys.agent: ${err.message}${err.hint ? ` (${err.hint})` : ''}`)
    return undefined
  }
}
