/**
 * What `mcp-config-validate` checks beyond the file itself, the way the server (or client) would
 * at start: TLS certificate files that exist, parse and match, an allowlist no other user can
 * write, a revoked keys file (KRL) that loads, and a Redis that answers. Each problem is one line naming the config key and the fix.
 * @module
 */
import { readFile } from 'node:fs/promises'
import { createSecureContext, type SecureContextOptions } from 'node:tls'
import type { Config } from '../../config/types.js'
import { AuthError } from '../../errors.js'
import { RedisNonceStore, redactRedisUrl, scrubCredentials } from '../../nonce/redis-nonce-store.js'
import { assertNotWritableByOthers } from '../../server/from-config.js'
import { loadOpenSshKrlFile } from '../../keys/openssh-krl.js'

export interface CheckFindings {
  errors: string[]
  warnings: string[]
  info: string[]
}

/** A client config names the servers it talks to; a server config has none. */
export function isClientConfig(config: Config): boolean {
  return Object.keys(config.servers).length > 0
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** Reads a PEM file named by `transport.ssl.<key>`; records the problem and returns undefined if it cannot. */
async function readSslFile(key: 'cert_file' | 'key_file' | 'ca_file', file: string, found: CheckFindings): Promise<Buffer | undefined> {
  try {
    return await readFile(file)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'not readable by this user' : (code ?? messageOf(err))
    const fix = key === 'ca_file' ? 'point it at the PEM file of the CA that signed the certificate' : 'point it at an existing PEM file (see docs/configuration.md, TLS)'
    found.errors.push(`transport.ssl.${key}: ${file}: ${why}; ${fix}`)
    return undefined
  }
}

/**
 * The TLS files as the server (https/wss) or a client (which presents `cert_file`/`key_file` as
 * its client certificate and trusts `ca_file`) would load them: each exists, parses as PEM, and the
 * key matches the certificate (Node's own TLS context is the judge).
 */
export async function checkTlsFiles(config: Config, found: CheckFindings): Promise<void> {
  const { type, ssl } = config.transport
  const serverTls = type === 'https' || type === 'wss'
  if (!serverTls && !isClientConfig(config)) return
  if (isClientConfig(config) && (ssl.cert_file === null) !== (ssl.key_file === null)) {
    found.errors.push('transport.ssl: a client certificate needs both cert_file and key_file (one of them is missing)')
  }
  const options: SecureContextOptions = {}
  if (ssl.cert_file !== null) options.cert = await readSslFile('cert_file', ssl.cert_file, found)
  if (ssl.key_file !== null) options.key = await readSslFile('key_file', ssl.key_file, found)
  if (ssl.ca_file !== null) options.ca = await readSslFile('ca_file', ssl.ca_file, found)
  if (Object.values(options).some((v) => v === undefined)) return
  try {
    createSecureContext(options)
  } catch (err) {
    const hint = /key values mismatch/i.test(messageOf(err)) ? ' (key_file is not the key of cert_file)' : ''
    found.errors.push(`transport.ssl: Node cannot use these files: ${messageOf(err)}${hint}`)
    return
  }
  if (serverTls && ssl.verify_mode === 'required') {
    found.info.push('tls: verify_mode required: every client must present a TLS client certificate signed by ssl.ca_file (or a public CA)')
  }
}

/** The allowlist file and folder permissions the server refuses (as ssh's StrictModes does). */
export async function checkAllowlistPermissions(config: Config, found: CheckFindings): Promise<void> {
  try {
    await assertNotWritableByOthers(config.acl.allowlist_path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    // The server refuses such an allowlist; a client's list of trusted servers deserves the same care.
    if (isClientConfig(config)) found.warnings.push(`acl.allowlist_path: ${messageOf(err)}`)
    else found.errors.push(`acl.allowlist_path: ${messageOf(err)}`)
  }
}

/**
 * Connects to `auth.nonce_store.url` as the server does at start (ready within 2 s, replay epoch
 * read, and the eviction check: a Redis that could drop live replay entries is an error, as at start).
 */
export async function checkRedis(config: Config, found: CheckFindings, timeoutMs = 2000): Promise<void> {
  const ns = config.auth.nonce_store
  if (ns.type !== 'redis') {
    found.info.push('redis: not used (auth.nonce_store.type is memory)')
    return
  }
  const shown = redactRedisUrl(ns.url)
  let lastError = ''
  const store = new RedisNonceStore({ redis: ns.url, keyPrefix: ns.key_prefix, evictionChecked: ns.eviction_checked, onError: (err) => (lastError = scrubCredentials(err.message, ns.url)) })
  try {
    await store.ready(timeoutMs)
    found.info.push(`redis: ${shown} answers`)
    found.info.push(`redis: replay entries cannot be evicted (CONFIG GET maxmemory-policy${ns.eviction_checked ? ', or auth.nonce_store.eviction_checked where CONFIG is disabled' : ''})`)
  } catch (err) {
    if (err instanceof AuthError && err.code === 'config_invalid') {
      // Redis answers but may evict replay entries (or cannot be asked): the server refuses to start.
      found.errors.push(`auth.nonce_store: Redis at ${shown}: ${scrubCredentials(err.message, ns.url)}`)
      return
    }
    const why = lastError !== '' ? lastError : scrubCredentials(messageOf(err), ns.url)
    found.errors.push(`auth.nonce_store.url: cannot use Redis at ${shown}: ${why}. The server refuses to start without it: start Redis there, or fix the url`)
  } finally {
    await store.close().catch(() => undefined)
  }
}

/** `auth.revoked_keys_file` as the server loads it at start: it exists and is a KRL read whole. */
export async function checkRevokedKeysFile(config: Config, found: CheckFindings): Promise<void> {
  const path = config.auth.revoked_keys_file
  if (path === null) return
  try {
    const krl = await loadOpenSshKrlFile(path)
    const cas = krl.certificateRevocations().length
    const keys = krl.explicitEd25519Keys().length
    found.info.push(`revoked keys: ${path}: KRL version ${krl.version}, ${keys} ${keys === 1 ? 'key' : 'keys'} listed explicitly, certificate revocations under ${cas} ${cas === 1 ? 'CA' : 'CAs'}`)
  } catch (err) {
    found.errors.push(`auth.revoked_keys_file: ${messageOf(err)}; the server refuses to start without it (write one with ssh-keygen -k -f ${path} …)`)
  }
}
