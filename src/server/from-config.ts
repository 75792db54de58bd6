/**
 * Builds the server's {@link AuthService} from a loaded {@link Config}: the server key, the client
 * allowlist (watched: an edit is picked up without a restart, a broken edit keeps the last good
 * list and is audited as `allowlist.reload_failed`), the nonce store (memory, bounded by
 * `auth.nonce_cache_size`, or Redis shared by several processes), revocation (Redis, and the KRL of
 * `auth.revoked_keys_file`, watched like the allowlist), rate limits,
 * the ticket key, session binding, proof window, audience and lifetimes.
 * @module
 */
import { mkdir, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { AllowlistHolder, loadAllowlistFile, persistCompletedEntry, watchAllowlistFile, type AllowlistWatcher } from '../allowlist/allowlist-file.js'
import { AuditLogger, type AuditLevel } from '../audit/audit-logger.js'
import type { Config } from '../config/types.js'
import { AuthError } from '../errors.js'
import { fromB64u } from '../internal/bytes.js'
import type { Clock } from '../internal/clock.js'
import { loadCertificateFile, loadPrivateKeyFile, writePrivateKeyFile, writePublicKeyFile } from '../keys/key-file.js'
import { fingerprintOf, generateKeyPair, type Ed25519KeyPair } from '../keys/key-pair.js'
import { InMemoryNonceStore } from '../nonce/memory-nonce-store.js'
import type { NonceStore } from '../nonce/nonce-store.js'
import { RedisNonceStore, scrubCredentials } from '../nonce/redis-nonce-store.js'
import type { AuthMetrics } from '../metrics/auth-metrics.js'
import { createReadiness, type Readiness, type ReadinessCheck } from '../metrics/readiness.js'
import { RateLimiter } from '../ratelimit/token-bucket.js'
import { RedisRevocationList } from '../revocation/redis-revocation-list.js'
import { combineRevocationChecks } from '../revocation/krl-revocation.js'
import { watchKrlFile } from '../revocation/krl-file.js'
import type { RevocationCheck } from '../session/session-verifier.js'
import { deriveTicketKey, rotatingTicketKeys, ticketKeyFrom, type TicketKey, type TicketKeyRing } from '../session/ticket.js'
import { privateKeySeed } from '../keys/key-pair.js'
import { describeServerKeys, loadServerKeys, serverKeyFilesOf, watchServerKeys, type ServerKeyLoader } from './server-keys.js'
import { agentServerKey } from './agent-server-key.js'
import type { ServerKey } from '../handshake/server-key.js'
import { createAuthService, type AuditSink, type AuthService } from '../transport/auth-service.js'

/** Seconds each random ticket key seals for when the server key is in an agent and no ticket key is set. */
export const AGENT_TICKET_KEY_ROTATION = 3600

export interface FromConfigOptions {
  clock?: Clock
  /** Audit logger to use (default: AuditLogger.fromConfig(config.audit), closed by close()). */
  audit?: AuditLogger
  /** Sees every audit event too (the server command prints them to stderr). */
  onEvent?: (event: string, fields: Readonly<Record<string, unknown>>, level: AuditLevel) => void
  /** Allowlist file poll interval in ms (default 500). */
  allowlistPollMs?: number
  /**
   * The replay store to use when `auth.nonce_store.type` is `memory`, instead of one of this
   * process's own (a `--workers` worker passes the primary's, ../nonce/ipc-nonce-store.ts).
   * Closed by close().
   */
  replayStore?: NonceStore
  /** Metrics to report to (createAuthMetrics); default none. */
  metrics?: AuthMetrics
}

export interface ConfiguredAuthService {
  service: AuthService
  /** The server key at start: a key pair, or (keys.agent) a key the ssh-agent holds. */
  keyPair: ServerKey
  allowlist: AllowlistHolder
  audit: AuditLogger
  /** The audit sink the service writes to (audit plus onEvent). */
  events: AuditSink
  nonceStore: NonceStore
  /** What `/ready` answers: the allowlist is loaded and the Redis stores (if any) are reachable. */
  readiness: Readiness
  /** Checks the allowlist file now and reloads if it changed. */
  reloadAllowlist(): Promise<void>
  /** Stops watching, closes the stores and (if created here) the audit log. */
  close(): Promise<void>
}

async function loadOrCreateKey(config: Config): Promise<Ed25519KeyPair> {
  try {
    return await loadPrivateKeyFile(config.keys.private_key_path)
  } catch (err) {
    const missing = err instanceof AuthError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
    if (!missing || !config.keys.auto_generate) throw err
    const kp = generateKeyPair()
    await mkdir(dirname(config.keys.private_key_path), { recursive: true })
    await writePrivateKeyFile(config.keys.private_key_path, kp.privateKey)
    await writePublicKeyFile(config.keys.public_key_path, kp.publicKey).catch(() => undefined)
    return kp
  }
}

/**
 * The server key: from its file (made when `keys.auto_generate`), or in the agent (`keys.agent`;
 * then also how to load a rotation's keys through that agent).
 */
async function loadServerKey(config: Config): Promise<{ key: ServerKey; load?: ServerKeyLoader }> {
  return config.keys.agent ? agentServerKey(config.keys.public_key_path) : { key: await loadOrCreateKey(config) }
}

/**
 * Creates what every process of a `--workers` server reads, once, before any is forked: the
 * server key (when `keys.auto_generate`; with `keys.agent`, checks the agent holds it) and the
 * allowlist file (when `acl.auto_create`). Returns the server key.
 */
export async function prepareServerFiles(config: Config): Promise<ServerKey> {
  const { key: keyPair } = await loadServerKey(config)
  await loadAllowlistFile(config.acl.allowlist_path, { autoCreate: config.acl.auto_create })
  await assertNotWritableByOthers(config.acl.allowlist_path)
  return keyPair
}

export async function createAuthServiceFromConfig(config: Config, opts: FromConfigOptions = {}): Promise<ConfiguredAuthService> {
  const clock = opts.clock
  const ownsAudit = opts.audit === undefined
  const audit = opts.audit ?? AuditLogger.fromConfig(config.audit)
  const onEvent = opts.onEvent
  const metrics = opts.metrics
  const events: AuditSink =
    onEvent || metrics
      ? {
          log(event, fields = {}, level = 'INFO') {
            audit.log(event, fields, level)
            onEvent?.(event, fields, level)
            metrics?.observeEvent(event, fields)
          },
        }
      : audit

  const closers: Array<() => unknown> = []
  const closeAll = async (): Promise<void> => {
    for (const c of closers.reverse()) {
      try {
        await c()
      } catch {
        // closing is best effort
      }
    }
    closers.length = 0
    if (ownsAudit) await audit.close()
  }

  try {
    const { key: keyPair, load } = await loadServerKey(config)
    const allowlistPath = config.acl.allowlist_path
    const initial = await loadAllowlistFile(allowlistPath, { autoCreate: config.acl.auto_create })
    await assertNotWritableByOthers(allowlistPath)
    // A completed fingerprint-only entry is settled against the file as it is now (the handshake
    // waits for it); a failure is logged and refuses that handshake (fail closed).
    const holder = new AllowlistHolder(initial, (entry) =>
      persistCompletedEntry(allowlistPath, entry).catch((err: unknown) => {
        events.log('allowlist.reload_failed', { path: allowlistPath, reason: `could not check or record the key of ${entry.fingerprint}: ${(err as Error).message}` }, 'WARN')
        throw err
      }),
    clock ?? Date.now, config.auth.session_ttl)
    const watcher: AllowlistWatcher = watchAllowlistFile(allowlistPath, holder, {
      pollIntervalMs: opts.allowlistPollMs ?? 500,
      onReload: (list) => events.log('allowlist.reload', { path: allowlistPath, entries: list.size }),
      onError: (err) => events.log('allowlist.reload_failed', { path: allowlistPath, code: err.code, reason: `${err.message}; keeping the last good allowlist` }, 'ERROR'),
    })
    closers.push(() => watcher.close())

    // Server-key rotation: the next / previous key files are watched like the allowlist (server-keys.ts).
    const keyFiles = serverKeyFilesOf(config)
    const startKeys = await loadServerKeys(keyFiles, keyPair, load)
    if (startKeys.rotation !== undefined) events.log('server_key.reload', describeServerKeys(startKeys))
    const keyWatcher = watchServerKeys(keyFiles, startKeys, {
      pollIntervalMs: opts.allowlistPollMs ?? 500,
      ...(load === undefined ? {} : { load }),
      onReload: (keys) => events.log('server_key.reload', describeServerKeys(keys)),
      onError: (err) => events.log('server_key.reload_failed', { reason: `${err.message}; keeping the last good keys` }, 'ERROR'),
    })
    closers.push(() => keyWatcher.close())

    const ns = config.auth.nonce_store
    let nonceStore: NonceStore
    let revocation: RedisRevocationList | undefined
    const storeChecks: Record<string, ReadinessCheck> = {}
    if (ns.type === 'redis') {
      // Redis may quote AUTH arguments back in an error: never let the password reach the audit log.
      const onError = (err: Error): void => events.log('server.error', { component: 'redis', reason: scrubCredentials(err.message, ns.url) }, 'ERROR')
      const redisStore = new RedisNonceStore({
        redis: ns.url,
        keyPrefix: ns.key_prefix,
        onError,
        clockSkewMs: config.auth.fleet_clock_skew * 1000,
        evictionChecked: ns.eviction_checked,
        ...(clock ? { clock } : {}),
      })
      closers.push(() => redisStore.close())
      await redisStore.ready()
      nonceStore = redisStore
      const rl = new RedisRevocationList({ redis: ns.url, keyPrefix: ns.key_prefix, onError, ...(clock ? { clock } : {}) })
      closers.push(() => rl.close())
      await rl.ready()
      revocation = rl
      storeChecks.nonce_store = () => redisStore.ready(200)
      storeChecks.revocation_list = () => rl.synced
      metrics?.watchRevocation(rl)
    } else if (opts.replayStore) {
      const shared = opts.replayStore
      closers.push(() => shared.close?.())
      nonceStore = shared
    } else {
      // Handshake nonces (nonce_cache_size) and request windows (replay_window_sessions) are kept
      // apart inside the store, so a flood of requests can never fill what handshakes need.
      const mem = new InMemoryNonceStore({
        maxEntries: config.auth.nonce_cache_size,
        maxSessions: config.auth.replay_window_sessions,
        ...(clock ? { clock } : {}),
      })
      closers.push(() => mem.close())
      nonceStore = mem
    }

    // auth.revoked_keys_file: an OpenSSH KRL beside (or instead of) the Redis list, reloaded on change.
    const krlPath = config.auth.revoked_keys_file
    let revocationCheck: RevocationCheck | undefined = revocation
    if (krlPath !== null) {
      const krl = await watchKrlFile(krlPath, {
        pollIntervalMs: opts.allowlistPollMs ?? 500,
        onReload: (r) => events.log('krl.reload', { path: krlPath, version: r.krl.version.toString() }),
        onError: (err) => events.log('krl.reload_failed', { path: krlPath, reason: `${err.message}; keeping the last good revoked keys file` }, 'ERROR'),
      })
      closers.push(() => krl.close())
      revocationCheck = combineRevocationChecks(revocation, krl.revocation)
    }

    if (metrics !== undefined) {
      metrics.watchAllowlist(holder)
      nonceStore = metrics.instrumentNonceStore(nonceStore, 'handshake')
    }
    const readiness = createReadiness({ allowlist: () => holder.current !== undefined, ...storeChecks })

    const rl = config.auth.rate_limit
    const perAddressLimiter = rl.per_address > 0 ? new RateLimiter({ ratePerSecond: rl.per_address, burst: rl.burst, ...(clock ? { clock } : {}) }) : undefined
    const perAddressFailureLimiter = rl.per_address > 0 ? new RateLimiter({ ratePerSecond: rl.per_address, burst: rl.burst, ...(clock ? { clock } : {}) }) : undefined
    const perKeyLimiter = rl.per_key > 0 ? new RateLimiter({ ratePerSecond: rl.per_key, burst: rl.burst, ...(clock ? { clock } : {}) }) : undefined
    let ticketKeys: TicketKey[] | TicketKeyRing | undefined
    if (config.auth.ticket_key !== null) {
      const raw = fromB64u(config.auth.ticket_key)
      if (raw === undefined || raw.byteLength !== 32) throw new AuthError('config_invalid', 'auth.ticket_key must be base64url of exactly 32 bytes', { path: 'auth.ticket_key' })
      ticketKeys = [ticketKeyFrom(raw)]
    } else if (config.auth.ticket_key_rotation !== null) {
      const rotateEvery = config.auth.ticket_key_rotation
      ticketKeys = rotatingTicketKeys({ rotateEvery, keepFor: config.auth.session_ttl + config.auth.challenge_ttl, ...(clock ? { clock } : {}) })
    } else if (keyPair.privateKey === undefined) {
      // A key in the agent gives no seed to derive a ticket key from: random ones in this process,
      // as auth.ticket_key_rotation would (sessions end with the process; see docs/operations.md).
      ticketKeys = rotatingTicketKeys({ rotateEvery: AGENT_TICKET_KEY_ROTATION, keepFor: config.auth.session_ttl + config.auth.challenge_ttl, ...(clock ? { clock } : {}) })
    } else if (startKeys.rotation?.to === keyPair && startKeys.rotation.from.privateKey !== undefined) {
      // Restarted after a switch: sessions sealed under the previous key's derived ticket key still open.
      ticketKeys = [deriveTicketKey(privateKeySeed(keyPair.privateKey)), deriveTicketKey(privateKeySeed(startKeys.rotation.from.privateKey))]
    }

    const certificate = config.keys.certificate_path === null ? undefined : await loadHostCertificate(config.keys.certificate_path, keyPair.fingerprint)
    const service = createAuthService({
      keyPair,
      serverKeys: keyWatcher.get,
      ...(certificate === undefined ? {} : { certificate }),
      allowlist: holder,
      nonceStore,
      timestampTolerance: config.auth.timestamp_tolerance,
      challengeTtl: config.auth.challenge_ttl,
      sessionTtl: config.auth.session_ttl,
      audience: config.auth.audience,
      ...(isWildcardHost(config.transport.host) ? {} : { localNames: [config.transport.host] }),
      binding: config.auth.session_binding,
      proofWindow: config.auth.proof_window,
      maxMessageSize: config.transport.max_body_size,
      audit: events,
      ...(ticketKeys ? { ticketKeys } : {}),
      ...(revocationCheck ? { revocation: revocationCheck } : {}),
      ...(perAddressLimiter ? { perAddressLimiter } : {}),
      ...(perAddressFailureLimiter ? { perAddressFailureLimiter } : {}),
      ...(perKeyLimiter ? { perKeyLimiter } : {}),
      ...(clock ? { clock } : {}),
      ...(metrics ? { observer: metrics.observer } : {}),
    })

    return {
      service,
      keyPair,
      allowlist: holder,
      audit,
      events,
      nonceStore,
      readiness,
      reloadAllowlist: () => watcher.check(),
      close: closeAll,
    }
  } catch (err) {
    await closeAll()
    throw err
  }
}

/**
 * Refuses an allowlist that another local user could edit (as ssh's StrictModes does for
 * authorized_keys): the file writable by group or others, or its folder writable by others
 * without the sticky bit.
 */
export async function assertNotWritableByOthers(path: string): Promise<void> {
  const file = await stat(path)
  if ((file.mode & 0o022) !== 0) {
    throw new AuthError(
      'allowlist_invalid',
      `${path}: permissions 0${(file.mode & 0o777).toString(8)} let other users add keys; refusing it. Fix: chmod go-w ${path}`,
      { path },
    )
  }
  const dir = await stat(dirname(path))
  if ((dir.mode & 0o002) !== 0 && (dir.mode & 0o1000) === 0) {
    throw new AuthError('allowlist_invalid', `${dirname(path)}: any user can write this folder and replace the allowlist; refusing it. Fix: chmod o-w ${dirname(path)}`, {
      path,
    })
  }
}

/** Listening on every address: the host adds no name of its own. */
function isWildcardHost(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::' || host === '[::]'
}

/**
 * The server's `keys.certificate_path`: an OpenSSH host certificate for the server key
 * (`ssh-keygen -s ca -h -n host server.pub`), sent in message 2 so clients that trust the CA accept
 * the key for that host name.
 */
async function loadHostCertificate(path: string, serverFingerprint: string): Promise<Buffer> {
  const loaded = await loadCertificateFile(path)
  const subject = fingerprintOf(loaded.certificate.subjectPublicKey)
  if (subject !== serverFingerprint) {
    throw new AuthError('config_invalid', `keys.certificate_path: ${path} is a certificate for key ${subject}, not for the server key ${serverFingerprint}; certify the server key (ssh-keygen -s <ca> -h -I <id> -n <host name> <server key>.pub)`, { path: 'keys.certificate_path' })
  }
  if (loaded.certificate.type !== 'host') {
    throw new AuthError('config_invalid', `keys.certificate_path: ${path} is a user certificate; a server presents a host certificate (ssh-keygen -s <ca> -h -n <host name> …)`, { path: 'keys.certificate_path' })
  }
  return loaded.blob
}
