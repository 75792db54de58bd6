#!/usr/bin/env node
/**
 * mcp-allowlist — manage the allowlist file named by `acl.allowlist_path` in the config.
 *
 *   mcp-allowlist add --config server_config.yml --key-file ./keys/client_public.pem --metadata '{"role": "api_client"}'
 *   mcp-allowlist add --config server_config.yml --fingerprint <64 hex> --metadata '{"role": "backup_server"}'
 *   mcp-allowlist add --config server_config.yml --cert-authority --key-file ca.pub --metadata '{"org": "acme"}' [--principals a,b] [--role-from principal|extension:NAME]
 *   mcp-allowlist list --config server_config.yml [--format table|json] [--show-metadata] [--filter-role ROLE]
 *   mcp-allowlist remove --config server_config.yml --fingerprint <fp or prefix> [<fp> …]
 *   mcp-allowlist export --config server_config.yml --output ./backups/allowlist_backup.json
 *   mcp-allowlist import --config server_config.yml --input ./backups/allowlist_backup.json --merge
 *   mcp-allowlist stats --config server_config.yml
 *   mcp-allowlist revoke --config server_config.yml (--fingerprint <fp or prefix> | --key-file F) [--reason TEXT] [--dry-run]
 *   mcp-allowlist unrevoke --config server_config.yml (--fingerprint <fp or prefix> | --key-file F) [--dry-run]
 *   mcp-allowlist revoke --config server_config.yml (--serial N | --key-id ID) --ca <CA fp or prefix> [--reason TEXT]
 *   mcp-allowlist revoked --config server_config.yml [--format table|json] [--wide]
 *
 * Writes take a lock on the file (`<allowlist>.lock`) and replace it atomically, so concurrent
 * runs never lose an entry and a crash never leaves a half-written file.
 *
 * `revoke` / `unrevoke` / `revoked` work on the fleet-wide revocation list in Redis
 * ({@link RedisRevocationList}), found through `auth.nonce_store` of the config (type redis; the
 * same url and key_prefix as the servers; MCP_NONCE_STORE / MCP_REDIS_URL apply). Every server
 * process sharing that Redis refuses a revoked key's handshakes and sessions within milliseconds
 * (after `unrevoke` the key authenticates again; sessions it had before the revocation stay
 * refused); the allowlist file is not changed. A prefix must match one allowlist entry (for `unrevoke`, or one revoked
 * key); a full fingerprint may name a key that is not listed. Redis that does not answer within
 * 3 s is an error naming the URL without its credentials.
 * @module
 */
import { mkdir, readFile, stat } from 'node:fs/promises'
import { hostname, userInfo } from 'node:os'
import { dirname, resolve } from 'node:path'
import { Command, Option } from 'commander'
import type { Redis } from 'ioredis'
import { Allowlist, entryHasKey, isFingerprint, toFileRecord } from '../allowlist/allowlist.js'
import { loadAllowlistFile, updateAllowlistFile } from '../allowlist/allowlist-file.js'
import { writeFileAtomic } from '../allowlist/file-lock.js'
import type { AllowlistEntry } from '../allowlist/types.js'
import { certAuthorityRecord, type CertAuthorityEntry } from '../allowlist/cert-authority.js'
import { certificateRevocationIds } from '../keys/openssh-cert.js'
import { loadConfig, parseConfig } from '../config/load-config.js'
import type { Config } from '../config/types.js'
import { AuthError } from '../errors.js'
import { loadPublicKeyFile } from '../keys/key-file.js'
import { createRedisClient, redactRedisUrl, scrubCredentials } from '../nonce/redis-nonce-store.js'
import { hasControlCharacter, printable } from '../internal/text.js'
import { RedisRevocationList } from '../revocation/redis-revocation-list.js'
import { PACKAGE_VERSION } from '../transport/http-server.js'
import { configureProgram, printJson, printLine, runCli, UsageError, warn } from './shared/output.js'

interface CommonOptions {
  config?: string
  allowlist?: string
}

interface Target {
  path: string
  autoCreate: boolean
  metadataRequired: boolean
  /** `auth.nonce_store` of the config (after MCP_* overrides): where revocations live. */
  nonceStore: Config['auth']['nonce_store']
  /** The config file, for messages (`the default config` without --config). */
  configName: string
}

async function resolveTarget(opts: CommonOptions): Promise<Target> {
  const config = opts.config === undefined ? parseConfig('{}', { source: 'defaults' }).config : await loadConfig(opts.config)
  return {
    path: opts.allowlist === undefined ? config.acl.allowlist_path : resolve(opts.allowlist),
    autoCreate: config.acl.auto_create,
    metadataRequired: config.acl.metadata_required,
    nonceStore: config.auth.nonce_store,
    configName: opts.config ?? 'the default config',
  }
}

/** Reads the allowlist for a read-only command; a missing file is an empty list when auto_create is on. */
async function readAllowlist(target: Target): Promise<Allowlist> {
  try {
    return await loadAllowlistFile(target.path)
  } catch (err) {
    if (target.autoCreate && err instanceof AuthError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
      return new Allowlist(target.path)
    }
    throw err
  }
}

function addedBy(): string {
  try {
    return `${userInfo().username}@${hostname()}`
  } catch {
    return 'mcp-allowlist'
  }
}

function parseMetadata(text: string | undefined): Record<string, unknown> {
  if (text === undefined) return {}
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new Error(`--metadata is not valid JSON: ${(err as Error).message}`, { cause: err })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`--metadata must be a JSON object like '{"role": "api_client"}', got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`)
  }
  return value as Record<string, unknown>
}

function roleOf(entry: AllowlistEntry): string | undefined {
  const role = entry.metadata.role
  return typeof role === 'string' ? role : role === undefined || role === null ? undefined : JSON.stringify(role)
}

function expiresText(entry: AllowlistEntry): string {
  const e = entry.metadata.expires
  if (typeof e === 'string') return e
  return entry.notAfter === undefined ? '-' : new Date(entry.notAfter).toISOString()
}

function statusOf(entry: AllowlistEntry, now: number): string {
  if (entry.notAfter !== undefined && entry.notAfter <= now) return 'EXPIRED'
  return entryHasKey(entry) ? 'active' : 'fingerprint-only'
}

/** Strips the "…"/"..." a shortened fingerprint (as `list` prints it) may carry. */
function normalizePrefix(text: string): string {
  const p = text.trim().replace(/(\.\.\.|…)$/, '').toLowerCase()
  if (p.length < 8) throw new UsageError(`fingerprint prefix "${text}" is too short: give at least 8 hex characters`)
  // Not hex, or longer than a fingerprint: it matches nothing and is reported as not on the allowlist.
  return p
}

function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd()
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

// ---------------------------------------------------------------------------------------------

interface AddOptions extends CommonOptions {
  certAuthority?: boolean
  principals?: string
  roleFrom?: string
  keyFile?: string
  fingerprint?: string
  metadata?: string
  description?: string
  replace?: boolean
  dryRun?: boolean
}

async function runAdd(opts: AddOptions): Promise<void> {
  if (opts.certAuthority) {
    await runAddCertAuthority(opts)
    return
  }
  if (opts.principals !== undefined || opts.roleFrom !== undefined) {
    throw new UsageError('--principals and --role-from are only used with --cert-authority')
  }
  if ((opts.keyFile === undefined) === (opts.fingerprint === undefined)) {
    throw new UsageError('give exactly one of --key-file FILE or --fingerprint HEX')
  }
  const metadata = parseMetadata(opts.metadata)
  const target = await resolveTarget(opts)
  if (target.metadataRequired && Object.keys(metadata).length === 0) {
    throw new AuthError('allowlist_invalid', 'acl.metadata_required is set: give --metadata with at least one field')
  }
  let publicKeyRaw: Buffer | undefined
  let fingerprint: string
  if (opts.keyFile !== undefined) {
    const key = await loadPublicKeyFile(opts.keyFile)
    publicKeyRaw = key.publicKeyRaw
    fingerprint = key.fingerprint
  } else {
    const fp = (opts.fingerprint ?? '').trim()
    if (!isFingerprint(fp)) {
      throw new AuthError(
        'allowlist_invalid',
        `--fingerprint must be the full 64-hex-character SHA-256 fingerprint, got "${fp.slice(0, 80)}"`,
      )
    }
    fingerprint = fp.toLowerCase()
  }
  let added: AllowlistEntry | undefined
  let replaced = false
  await updateAllowlistFile(
    target.path,
    (list) => {
      replaced = list.get(fingerprint) !== undefined
      added = list.add(
        {
          publicKeyRaw,
          fingerprint: publicKeyRaw === undefined ? fingerprint : undefined,
          metadata,
          description: opts.description,
          addedBy: addedBy(),
        },
        { replace: opts.replace === true },
      )
    },
    { dryRun: opts.dryRun === true },
  )
  if (!added) return
  const role = roleOf(added)
  const verb = opts.dryRun ? 'would add' : replaced ? 'replaced' : 'added'
  printLine(`${verb} ${added.fingerprint}${role ? ` (role ${role})` : ''}${entryHasKey(added) ? '' : ' [fingerprint only]'}`)
  if (opts.dryRun) printLine(`dry run: ${target.path} not changed`)
  warnIfAlreadyExpired(added)
}

/**
 * An entry whose `expires` (or `not_after`) is already past is kept (the product description's own
 * example adds one), but it cannot authenticate: say so instead of adding it silently.
 */
function warnIfAlreadyExpired(entry: AllowlistEntry): void {
  if (entry.notAfter === undefined || entry.notAfter > Date.now()) return
  warn(
    `this entry expired on ${expiresText(entry)}: the key is on the allowlist but cannot authenticate; ` +
      `to let it in, run the same add with --replace and a future "expires" in --metadata (or none)`,
  )
}

async function runAddCertAuthority(opts: AddOptions): Promise<void> {
  if (opts.keyFile === undefined || opts.fingerprint !== undefined) {
    throw new UsageError('--cert-authority needs --key-file <CA public key> (e.g. ca.pub, the public half of the key given to ssh-keygen -s)')
  }
  const principals = opts.principals?.split(',').map((p) => p.trim())
  if (principals !== undefined && principals.some((p) => p === '')) throw new UsageError('--principals is a comma-separated list of names, e.g. alice,deploy')
  if (opts.roleFrom !== undefined && !/^(principal|extension:\S+)$/.test(opts.roleFrom)) {
    throw new UsageError(`--role-from must be "principal" or "extension:NAME", got "${printable(opts.roleFrom)}"`)
  }
  const metadata = parseMetadata(opts.metadata)
  const target = await resolveTarget(opts)
  if (target.metadataRequired && Object.keys(metadata).length === 0) {
    throw new AuthError('allowlist_invalid', 'acl.metadata_required is set: give --metadata with at least one field')
  }
  const key = await loadPublicKeyFile(opts.keyFile)
  let added: CertAuthorityEntry | undefined
  let replaced = false
  await updateAllowlistFile(
    target.path,
    (list) => {
      replaced = list.getCertAuthority(key.fingerprint) !== undefined
      added = list.addCertAuthority(
        {
          publicKeyRaw: key.publicKeyRaw,
          metadata,
          addedBy: addedBy(),
          ...(opts.description !== undefined ? { description: opts.description } : {}),
          ...(principals !== undefined ? { principals } : {}),
          ...(opts.roleFrom !== undefined ? { roleFrom: opts.roleFrom } : {}),
        },
        { replace: opts.replace === true },
      )
    },
    { dryRun: opts.dryRun === true },
  )
  if (!added) return
  const verb = opts.dryRun ? 'would add' : replaced ? 'replaced' : 'added'
  printLine(`${verb} certificate authority ${added.fingerprint}${caText(added)}`)
  printLine(`clients with a valid user certificate from this CA${added.principals ? ` for ${added.principals.join(', ')}` : ''} are accepted; remove the entry to cut them all off`)
  if (opts.dryRun) printLine(`dry run: ${target.path} not changed`)
}

function caText(ca: CertAuthorityEntry): string {
  const parts: string[] = []
  if (ca.principals) parts.push(`principals ${ca.principals.join(',')}`)
  parts.push(`role from ${ca.roleFrom ?? 'metadata.role'}`)
  if (Object.keys(ca.metadata).length > 0) parts.push(`metadata ${JSON.stringify(ca.metadata)}`)
  return ` (${parts.join('; ')})`
}

interface ListOptions extends CommonOptions {
  format: 'table' | 'json'
  showMetadata?: boolean
  filterRole?: string
  wide?: boolean
}

async function runList(opts: ListOptions): Promise<void> {
  const target = await resolveTarget(opts)
  const list = await readAllowlist(target)
  const now = Date.now()
  const selected: AllowlistEntry[] = []
  for (const entry of list.entries()) {
    if (opts.filterRole !== undefined && roleOf(entry) !== opts.filterRole) continue
    selected.push(entry)
  }
  const authorities = list.certAuthorities().filter((a) => opts.filterRole === undefined || a.metadata.role === opts.filterRole)
  if (opts.format === 'json') {
    printJson([
      ...selected.map((e) => ({ ...toFileRecord(e), status: statusOf(e, now) })),
      ...authorities.map((a) => ({ kind: 'cert_authority', ...certAuthorityRecord(a), status: 'active' })),
    ])
    return
  }
  printCertAuthorities(authorities, opts.wide === true)
  if (selected.length === 0) {
    printLine(opts.filterRole === undefined ? `no keys in ${target.path}` : `no keys with role "${opts.filterRole}" in ${target.path}`)
    return
  }
  const header = ['FINGERPRINT', 'ROLE', 'DESCRIPTION', 'ADDED', 'EXPIRES', 'STATUS']
  if (opts.showMetadata) header.push('METADATA')
  const rows = selected.map((e) => {
    const row = [
      opts.wide ? e.fingerprint : `${e.fingerprint.slice(0, 16)}…`,
      roleOf(e) ?? '-',
      e.description ?? '-',
      e.addedAt.slice(0, 19).replace('T', ' ') || '-',
      expiresText(e),
      statusOf(e, now),
    ]
    if (opts.showMetadata) row.push(JSON.stringify(e.metadata))
    return row
  })
  printLine(formatTable(header, rows))
  printLine(`${selected.length} key${selected.length === 1 ? '' : 's'}${opts.filterRole === undefined ? '' : ` with role "${opts.filterRole}"`} in ${target.path}`)
}

function printCertAuthorities(authorities: readonly CertAuthorityEntry[], wide: boolean): void {
  if (authorities.length === 0) return
  const rows = authorities.map((a) => [
    wide ? a.fingerprint : `${a.fingerprint.slice(0, 16)}…`,
    a.principals?.join(',') ?? '(any)',
    a.roleFrom ?? (typeof a.metadata.role === 'string' ? `metadata.role=${a.metadata.role}` : '-'),
    printable(a.description ?? '-'),
    JSON.stringify(a.metadata),
  ])
  printLine(formatTable(['CERTIFICATE AUTHORITY', 'PRINCIPALS', 'ROLE FROM', 'DESCRIPTION', 'METADATA'], rows))
  printLine(`${authorities.length} certificate authorit${authorities.length === 1 ? 'y' : 'ies'}`)
  printLine()
}

interface RemoveOptions extends CommonOptions {
  fingerprint: string[]
  dryRun?: boolean
}

async function runRemove(opts: RemoveOptions): Promise<void> {
  const prefixes = opts.fingerprint.map((f) => ({ text: f, prefix: normalizePrefix(f) }))
  const target = await resolveTarget(opts)
  const removed: string[] = []
  await updateAllowlistFile(
    target.path,
    (list) => {
      const found: string[] = []
      const unknown: string[] = []
      for (const { text, prefix } of prefixes) {
        const entry = list.findByPrefix(prefix) ?? list.findCertAuthorityByPrefix(prefix)
        if (entry) found.push(entry.fingerprint)
        else unknown.push(text)
      }
      if (unknown.length > 0) {
        throw new AuthError(
          'allowlist_entry_not_found',
          `not on the allowlist ${target.path}: ${unknown.join(', ')} (nothing removed)`,
          { path: target.path },
        )
      }
      for (const fp of new Set(found)) {
        if (!list.remove(fp)) list.removeCertAuthority(fp)
        removed.push(fp)
      }
    },
    { dryRun: opts.dryRun === true, createIfMissing: false },
  )
  for (const fp of removed) printLine(`${opts.dryRun ? 'would remove' : 'removed'} ${fp}`)
  if (opts.dryRun) printLine(`dry run: ${target.path} not changed`)
}

interface ExportOptions extends CommonOptions {
  output: string
  force?: boolean
  dryRun?: boolean
}

async function runExport(opts: ExportOptions): Promise<void> {
  const target = await resolveTarget(opts)
  const list = await readAllowlist(target)
  if (!opts.force) {
    try {
      await stat(opts.output)
      throw new AuthError('allowlist_invalid', `${opts.output} already exists (use --force to overwrite it)`, { path: opts.output })
    } catch (err) {
      if (err instanceof AuthError) throw err
    }
  }
  if (opts.dryRun) {
    printLine(`would export ${list.size} key${list.size === 1 ? '' : 's'} to ${opts.output}`)
    return
  }
  await mkdir(dirname(resolve(opts.output)), { recursive: true })
  await writeFileAtomic(opts.output, list.toJSON())
  printLine(`exported ${list.size} key${list.size === 1 ? '' : 's'} to ${opts.output}`)
}

interface ImportOptions extends CommonOptions {
  input: string
  merge?: boolean
  replace?: boolean
  dryRun?: boolean
}

async function runImport(opts: ImportOptions): Promise<void> {
  if (opts.merge && opts.replace) throw new UsageError('--merge and --replace cannot be used together')
  let text: string
  try {
    text = await readFile(opts.input, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new AuthError('allowlist_invalid', `${opts.input}: cannot read (${code === 'ENOENT' ? 'no such file' : (code ?? 'error')})`, {
      path: opts.input,
      cause: err,
    })
  }
  const incoming = Allowlist.fromJSON(text, opts.input)
  const target = await resolveTarget(opts)
  let added = 0
  let skipped = 0
  let dropped = 0
  await updateAllowlistFile(
    target.path,
    (list) => {
      if (!opts.merge) {
        if (list.size > 0 && !opts.replace) {
          throw new AuthError(
            'allowlist_entry_exists',
            `${target.path} already has ${list.size} key${list.size === 1 ? '' : 's'}; use --merge to add to it or --replace to overwrite it`,
            { path: target.path },
          )
        }
        for (const e of [...list.entries()]) {
          if (!incoming.get(e.fingerprint)) dropped++
          list.remove(e.fingerprint)
        }
      }
      for (const entry of incoming.entries()) {
        if (list.get(entry.fingerprint)) {
          skipped++
          continue
        }
        list.put(entry)
        added++
      }
      if (!opts.merge) for (const ca of list.certAuthorities()) list.removeCertAuthority(ca.fingerprint)
      for (const ca of incoming.certAuthorities()) {
        if (!list.getCertAuthority(ca.fingerprint)) list.addCertAuthority(ca)
      }
    },
    { dryRun: opts.dryRun === true },
  )
  const prefix = opts.dryRun ? 'would import' : 'imported'
  const extra = opts.merge ? `added ${added}, skipped ${skipped} already present` : `replaced the allowlist; ${dropped} old entr${dropped === 1 ? 'y' : 'ies'} dropped`
  printLine(`${prefix} ${incoming.size} key${incoming.size === 1 ? '' : 's'} from ${opts.input} into ${target.path} (${extra})`)
  if (opts.dryRun) printLine(`dry run: ${target.path} not changed`)
}

interface StatsOptions extends CommonOptions {
  format: 'text' | 'json'
}

async function runStats(opts: StatsOptions): Promise<void> {
  const target = await resolveTarget(opts)
  const list = await readAllowlist(target)
  let size = 0
  try {
    size = (await stat(target.path)).size
  } catch {
    // not created yet
  }
  const now = Date.now()
  let withKey = 0
  let expired = 0
  const byRole = new Map<string, number>()
  for (const e of list.entries()) {
    if (entryHasKey(e)) withKey++
    if (e.notAfter !== undefined && e.notAfter <= now) expired++
    const role = roleOf(e) ?? '(none)'
    byRole.set(role, (byRole.get(role) ?? 0) + 1)
  }
  const stats = {
    path: target.path,
    file_size: size,
    total: list.size,
    with_key: withKey,
    fingerprint_only: list.size - withKey,
    expired,
    cert_authorities: list.certAuthorities().length,
    by_role: Object.fromEntries([...byRole].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))),
  }
  if (opts.format === 'json') {
    printJson(stats)
    return
  }
  printLine(`allowlist:        ${stats.path} (${sizeText(size)})`)
  printLine(`total keys:       ${stats.total}`)
  printLine(`with public key:  ${stats.with_key}`)
  printLine(`fingerprint only: ${stats.fingerprint_only}`)
  printLine(`expired:          ${stats.expired}`)
  printLine(`cert authorities: ${stats.cert_authorities}`)
  printLine('by role:')
  if (byRole.size === 0) printLine('  -')
  for (const [role, count] of Object.entries(stats.by_role)) printLine(`  ${role}: ${count}`)
}

// --- revocation through Redis (revoke / unrevoke / revoked) ------------------------------------

/** How long to wait for Redis (connect, subscribe, load the revocations) before giving up. */
const REDIS_TIMEOUT_MS = 3000

interface KeyOptions extends CommonOptions {
  fingerprint?: string
  keyFile?: string
  /** A certificate's serial (with --ca). */
  serial?: string
  /** A certificate's key id (with --ca). */
  keyId?: string
  /** The certificate authority of --serial / --key-id: fingerprint or prefix of a CA entry. */
  ca?: string
}

interface RevokeOptions extends KeyOptions {
  reason?: string
  dryRun?: boolean
}

interface RevokedOptions extends CommonOptions {
  format: 'table' | 'json'
  wide?: boolean
}

/** An AuthError whose `hint` line runCli prints under the message. */
function errorWithHint(code: ConstructorParameters<typeof AuthError>[0], message: string, hint: string, cause?: unknown): AuthError {
  return Object.assign(new AuthError(code, message, cause === undefined ? {} : { cause }), { hint })
}

function whenText(at: number): string {
  return at > 0 ? new Date(at).toISOString().slice(0, 19).replace('T', ' ') + 'Z' : '-'
}

/** Where the revocations of a config live: the Redis URL (for messages, without credentials) and key prefix. */
function redisOf(target: Target): { url: string; shown: string; keyPrefix: string } {
  const ns = target.nonceStore
  if (ns.type !== 'redis') {
    throw errorWithHint(
      'config_invalid',
      `${target.configName} keeps nonces and revocations in each server process (auth.nonce_store.type: ${ns.type}); revoking a key across processes needs auth.nonce_store.type: redis (with the url and key_prefix every server process uses)`,
      'on one machine, `mcp-allowlist remove --config C --fingerprint FP` ends the key\'s sessions: the server reloads the allowlist within a second',
    )
  }
  return { url: ns.url, shown: redactRedisUrl(ns.url), keyPrefix: ns.key_prefix }
}

function storeText(redis: { shown: string; keyPrefix: string }): string {
  return `${redis.shown} (key prefix "${redis.keyPrefix}")`
}

/** A connection to Redis and the revocations loaded through it. */
interface OpenRevocations {
  list: RedisRevocationList
  client: Redis
}

/**
 * Connects, subscribes and loads the revocations, or fails within {@link REDIS_TIMEOUT_MS} naming
 * the URL (without credentials). The CLI owns the client: ioredis waits `disconnectTimeout` (2 s by
 * default) on a socket that never opened before letting the process exit, so it is made short here.
 */
async function openRevocations(redis: { url: string; shown: string; keyPrefix: string }): Promise<OpenRevocations> {
  let lastError: Error | undefined
  const onError = (err: Error): void => {
    lastError = err
  }
  const client = createRedisClient(redis.url, { onError, extra: { disconnectTimeout: 200 } })
  const list = new RedisRevocationList({ redis: client, keyPrefix: redis.keyPrefix, onError })
  try {
    await list.ready(REDIS_TIMEOUT_MS)
  } catch (err) {
    await closeRevocations({ list, client })
    const detail = lastError === undefined ? '' : `: ${scrubCredentials(printable(lastError.message), redis.url)}`
    throw errorWithHint(
      'server_busy',
      `cannot reach Redis at ${redis.shown} within ${REDIS_TIMEOUT_MS / 1000} s${detail}; nothing changed`,
      'is Redis running, and is auth.nonce_store.url (or MCP_REDIS_URL) the one the servers use?',
      err,
    )
  }
  return { list, client }
}

async function closeRevocations({ list, client }: OpenRevocations): Promise<void> {
  await list.close()
  if (client.status === 'ready') {
    try {
      await client.quit()
      return
    } catch {
      // fall through to disconnect
    }
  }
  client.disconnect()
}

/** Runs `fn` with the loaded revocations; the connection is closed afterwards so the process can exit. */
async function withRevocations<T>(redis: { url: string; shown: string; keyPrefix: string }, fn: (list: RedisRevocationList) => Promise<T>): Promise<T> {
  const open = await openRevocations(redis)
  try {
    return await fn(open.list)
  } catch (err) {
    if (err instanceof AuthError && err.code === 'server_busy') {
      throw errorWithHint('server_busy', `Redis at ${redis.shown} did not take the change (${err.message})`, 'try again; nothing was changed', err)
    }
    throw err
  } finally {
    await closeRevocations(open)
  }
}

/** The allowlist when it can be read (a missing file is empty); a broken one is a warning, not a failure. */
async function allowlistIfReadable(target: Target): Promise<Allowlist | undefined> {
  try {
    return await loadAllowlistFile(target.path)
  } catch (err) {
    if (err instanceof AuthError && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return undefined
    warn(`cannot read the allowlist ${target.path} (${(err as Error).message}); shown without its descriptions and roles`)
    return undefined
  }
}

function checkKeyOptions(opts: KeyOptions): void {
  if (opts.serial !== undefined || opts.keyId !== undefined || opts.ca !== undefined) {
    if (opts.keyFile !== undefined || opts.fingerprint !== undefined || (opts.serial !== undefined) === (opts.keyId !== undefined) || opts.ca === undefined) {
      throw new UsageError('a certificate is named by exactly one of --serial N or --key-id ID, together with --ca <CA fingerprint or prefix>, and without --fingerprint or --key-file')
    }
    if (opts.serial !== undefined && (!/^\d{1,20}$/.test(opts.serial) || BigInt(opts.serial) > 0xffffffffffffffffn || BigInt(opts.serial) === 0n)) {
      throw new UsageError(`--serial must be a certificate serial from 1 to 18446744073709551615 (ssh-keygen -z), got "${printable(opts.serial).slice(0, 40)}"; serial 0 means "no serial" and cannot be revoked by serial: use --key-id`)
    }
    if (opts.keyId !== undefined && (opts.keyId === '' || opts.keyId.length > 1024 || hasControlCharacter(opts.keyId))) {
      throw new UsageError('--key-id must be the certificate key id (ssh-keygen -I), one line of at most 1024 characters')
    }
    return
  }
  if ((opts.keyFile === undefined) === (opts.fingerprint === undefined)) {
    throw new UsageError('give exactly one of --fingerprint HEX (64 hex, or a unique prefix of 8 or more) or --key-file FILE')
  }
  if (opts.fingerprint !== undefined && !/^[0-9a-f]{8,64}$/.test(normalizePrefix(opts.fingerprint))) {
    throw new UsageError(`--fingerprint must be hex: the full 64-character SHA-256 fingerprint or a prefix of 8 or more, got "${printable(opts.fingerprint).slice(0, 80)}"`)
  }
}

interface ChosenKey {
  fingerprint: string
  /** Its allowlist entry, when listed. */
  entry: AllowlistEntry | undefined
  /** For a certificate revocation: what the id stands for ("certificate serial 7 of CA …"). */
  certificate?: string
}

/** The revocation id of --serial / --key-id under --ca (a CA on the allowlist, or a full fingerprint). */
async function chooseCertificate(opts: KeyOptions, target: Target): Promise<ChosenKey> {
  const prefix = normalizePrefix(opts.ca ?? '')
  const list = await allowlistIfReadable(target)
  let caFingerprint = list?.findCertAuthorityByPrefix(prefix)?.fingerprint
  if (caFingerprint === undefined) {
    if (!isFingerprint(prefix)) {
      throw errorWithHint(
        'allowlist_entry_not_found',
        `no certificate authority on the allowlist ${target.path} starts with ${prefix} (nothing changed)`,
        '`mcp-allowlist list` shows the CA entries; a CA that is not listed is named by its full 64-hex fingerprint',
      )
    }
    caFingerprint = prefix
  }
  const ids = certificateRevocationIds(caFingerprint, opts.serial ?? '', opts.keyId ?? '')
  return opts.serial !== undefined
    ? { fingerprint: ids.serial, entry: undefined, certificate: `certificate serial ${opts.serial} of CA ${caFingerprint}` }
    : { fingerprint: ids.keyId, entry: undefined, certificate: `certificate key id "${printable(opts.keyId ?? '')}" of CA ${caFingerprint}` }
}

/**
 * The fingerprint named by --key-file or --fingerprint. A prefix must match exactly one key on the
 * allowlist (or among `alsoKnown`, e.g. the revoked keys); a full fingerprint need not be listed.
 */
async function chooseKey(opts: KeyOptions, target: Target, action: string, alsoKnown: readonly string[] = []): Promise<ChosenKey> {
  if (opts.ca !== undefined) return chooseCertificate(opts, target)
  if (opts.keyFile !== undefined) {
    const { fingerprint } = await loadPublicKeyFile(opts.keyFile)
    return { fingerprint, entry: (await allowlistIfReadable(target))?.get(fingerprint) }
  }
  const prefix = normalizePrefix(opts.fingerprint ?? '')
  if (isFingerprint(prefix)) return { fingerprint: prefix, entry: (await allowlistIfReadable(target))?.get(prefix) }
  // A prefix names a key someone has seen listed: the allowlist must be readable for it.
  const list = alsoKnown.length > 0 ? await allowlistIfReadable(target) : await readAllowlist(target)
  const matches = new Set<string>()
  for (const e of list?.entries() ?? []) if (e.fingerprint.startsWith(prefix)) matches.add(e.fingerprint)
  for (const fp of alsoKnown) if (fp.startsWith(prefix)) matches.add(fp)
  if (matches.size > 1) {
    throw new AuthError(
      'allowlist_entry_not_found',
      `fingerprint prefix ${prefix} is ambiguous: ${matches.size} keys match (${[...matches].map((f) => f.slice(0, 16) + '…').join(', ')}); give more characters or the full fingerprint (nothing ${action})`,
    )
  }
  const [fingerprint] = matches
  if (fingerprint === undefined) {
    const where = alsoKnown.length > 0 ? `on the allowlist ${target.path} or among the revoked keys` : `on the allowlist ${target.path}`
    throw errorWithHint(
      'allowlist_entry_not_found',
      `no key ${where} starts with ${prefix} (nothing ${action})`,
      'a key that is not on the allowlist is named by its full 64-hex fingerprint or by --key-file',
    )
  }
  return { fingerprint, entry: list?.get(fingerprint) }
}

function entryText(entry: AllowlistEntry | undefined, certificate?: string): string {
  if (certificate !== undefined) return ` (${certificate})`
  if (entry === undefined) return ''
  const parts: string[] = []
  const role = roleOf(entry)
  if (role !== undefined) parts.push(`role ${printable(role)}`)
  if (entry.description !== undefined) parts.push(JSON.stringify(printable(entry.description)))
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`
}

async function runRevoke(opts: RevokeOptions): Promise<void> {
  checkKeyOptions(opts)
  if (opts.reason !== undefined && (opts.reason.length > 1024 || hasControlCharacter(opts.reason))) {
    throw new UsageError('--reason must be one line of at most 1024 characters')
  }
  const target = await resolveTarget(opts)
  const redis = redisOf(target)
  const key = await chooseKey(opts, target, 'revoked')
  await withRevocations(redis, async (list) => {
    const fp = key.fingerprint
    const reason = key.certificate === undefined ? opts.reason : `${key.certificate}${opts.reason === undefined ? '' : `: ${opts.reason}`}`.slice(0, 1024)
    const existing = list.list().find((i) => i.fingerprint === fp)
    if (existing !== undefined) {
      const since = whenText(existing.revokedAt)
      printLine(`already revoked ${fp}${entryText(key.entry, key.certificate)} since ${since}${existing.reason === undefined ? '' : `, reason: ${printable(existing.reason)}`}; nothing changed`)
      return
    }
    if (!opts.dryRun) await list.revoke(fp, reason)
    printLine(`${opts.dryRun ? 'would revoke' : 'revoked'} ${fp}${entryText(key.entry, key.certificate)}`)
    if (opts.reason !== undefined) printLine(`reason: ${opts.reason}`)
    if (key.entry === undefined && key.certificate === undefined) {
      printLine(`note: this key is not on the allowlist ${target.path}; revoked anyway, so it stays refused if it is added later`)
    }
    if (opts.dryRun) {
      printLine(`dry run: nothing written to ${storeText(redis)}`)
      return
    }
    printLine(
      key.certificate === undefined
        ? `every server process using ${storeText(redis)} now refuses this key's sessions (session_revoked); the allowlist file is unchanged`
        : `every server process using ${storeText(redis)} now refuses this certificate (cert_revoked); the allowlist file is unchanged`,
    )
  })
}

async function runUnrevoke(opts: RevokeOptions): Promise<void> {
  checkKeyOptions(opts)
  const target = await resolveTarget(opts)
  const redis = redisOf(target)
  await withRevocations(redis, async (list) => {
    const revoked = list.list()
    const key = await chooseKey(opts, target, 'unrevoked', revoked.map((i) => i.fingerprint))
    const fp = key.fingerprint
    if (!revoked.some((i) => i.fingerprint === fp)) {
      printLine(`not revoked: ${fp}${entryText(key.entry, key.certificate)}; nothing changed`)
      return
    }
    if (!opts.dryRun) await list.unrevoke(fp)
    printLine(`${opts.dryRun ? 'would unrevoke' : 'unrevoked'} ${fp}${entryText(key.entry, key.certificate)}`)
    if (opts.dryRun) {
      printLine(`dry run: nothing written to ${storeText(redis)}`)
      return
    }
    printLine(
      key.certificate !== undefined
        ? `server processes using ${storeText(redis)} accept this certificate again`
        : key.entry === undefined
        ? `note: this key is not on the allowlist ${target.path}, so it still cannot authenticate`
        : `server processes using ${storeText(redis)} accept this key again for new handshakes; sessions it had before the revocation stay refused (the client authenticates again)`,
    )
  })
}

async function runRevoked(opts: RevokedOptions): Promise<void> {
  const target = await resolveTarget(opts)
  const redis = redisOf(target)
  const revoked = await withRevocations(redis, async (list) => list.list())
  const allowlist = await allowlistIfReadable(target)
  revoked.sort((a, b) => a.revokedAt - b.revokedAt || a.fingerprint.localeCompare(b.fingerprint))
  const rows = revoked.map((info) => ({ info, entry: allowlist?.get(info.fingerprint) }))
  if (opts.format === 'json') {
    printJson(
      rows.map(({ info, entry }) => ({
        fingerprint: info.fingerprint,
        reason: info.reason ?? null,
        revoked_at: info.revokedAt > 0 ? new Date(info.revokedAt).toISOString() : null,
        on_allowlist: entry !== undefined,
        ...(entry === undefined
          ? {}
          : { role: roleOf(entry) ?? null, description: entry.description ?? null, metadata: entry.metadata }),
      })),
    )
    return
  }
  if (rows.length === 0) {
    printLine(`no revoked keys in ${storeText(redis)}`)
    return
  }
  const table = formatTable(
    ['FINGERPRINT', 'ROLE', 'DESCRIPTION', 'REVOKED', 'REASON'],
    rows.map(({ info, entry }) => [
      opts.wide ? info.fingerprint : `${info.fingerprint.slice(0, 16)}…`,
      entry === undefined ? (info.reason?.startsWith('certificate ') ? '(certificate)' : '(not on allowlist)') : printable(roleOf(entry) ?? '-'),
      printable(entry?.description ?? '-'),
      whenText(info.revokedAt),
      info.reason === undefined ? '-' : printable(info.reason),
    ]),
  )
  printLine(table)
  printLine(`${rows.length} revoked key${rows.length === 1 ? '' : 's'} in ${storeText(redis)}`)
}

// ---------------------------------------------------------------------------------------------

function common(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'YAML config; the allowlist is acl.allowlist_path (default ./keys/allowlist.json)')
    .option('--allowlist <file>', 'allowlist file to use instead of the one the config names')
}

function revocationCommon(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'YAML config: Redis from auth.nonce_store (url, key_prefix), the allowlist from acl.allowlist_path')
    .option('--allowlist <file>', 'allowlist file to use instead of the one the config names (for prefixes, roles, descriptions)')
}

function buildProgram(): Command {
  const program = configureProgram(new Command('mcp-allowlist'))
  program.description('Manage the mcp-pki-auth allowlist (keys allowed to authenticate, by SHA-256 fingerprint).')
  program.version(PACKAGE_VERSION)

  common(program.command('add').description('add a public key (or a bare fingerprint, or a certificate authority) to the allowlist'))
    .option('--key-file <file>', 'public key file: SPKI PEM, OpenSSH ssh-ed25519 line, or legacy MCP PUBLIC KEY')
    .option('--cert-authority', 'the key file is an OpenSSH certificate authority (ed25519): accept any key with a valid user certificate from it')
    .option('--principals <list>', 'with --cert-authority: certificates must list one of these principals (comma-separated)')
    .option('--role-from <source>', 'with --cert-authority: the role is the matched "principal" or the value of "extension:NAME" (default: metadata.role)')
    .option('--fingerprint <hex>', 'add by fingerprint only (64 hex); the key is filled in at its first handshake')
    .option('--metadata <json>', 'JSON object, e.g. \'{"role": "api_client", "expires": "2024-12-31"}\'')
    .option('--description <text>', 'free-text description')
    .option('--replace', 'overwrite an entry with the same fingerprint')
    .option('--dry-run', 'show what would change, write nothing')
    .action(async (opts: AddOptions) => runAdd(opts))

  common(program.command('list').description('list allowlist entries'))
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .option('--show-metadata', 'add a metadata column')
    .option('--filter-role <role>', 'only entries whose metadata.role is ROLE')
    .option('--wide', 'show full fingerprints')
    .action(async (opts: ListOptions) => runList(opts))

  common(program.command('remove').description('remove entries by fingerprint or unique prefix (8+ hex characters)'))
    .requiredOption('--fingerprint <fingerprint...>', 'one or more fingerprints or unique prefixes')
    .option('--dry-run', 'show what would change, write nothing')
    .action(async (opts: RemoveOptions) => runRemove(opts))

  common(program.command('export').description('write the allowlist to a file (version 1 format)'))
    .requiredOption('--output <file>', 'file to write')
    .option('--force', 'overwrite the output file if it exists')
    .option('--dry-run', 'show what would change, write nothing')
    .action(async (opts: ExportOptions) => runExport(opts))

  common(program.command('import').description('import entries from a file (this format, the Python tool\'s, or a list of entries)'))
    .requiredOption('--input <file>', 'file to read')
    .option('--merge', 'add new entries and keep existing ones')
    .option('--replace', 'replace a non-empty allowlist wholesale')
    .option('--dry-run', 'show what would change, write nothing')
    .action(async (opts: ImportOptions) => runImport(opts))

  common(program.command('stats').description('counts by status and role'))
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: StatsOptions) => runStats(opts))

  revocationCommon(program.command('revoke').description('revoke a key for every server process sharing the Redis of auth.nonce_store (type redis); the allowlist file is not changed'))
    .option('--fingerprint <hex>', 'full 64-hex fingerprint (need not be on the allowlist) or a unique prefix (8+ hex) of an allowlist entry')
    .option('--key-file <file>', 'public key file: SPKI PEM, OpenSSH ssh-ed25519 line, or legacy MCP PUBLIC KEY')
    .option('--serial <n>', 'revoke the certificate with this serial (ssh-keygen -z) from --ca')
    .option('--key-id <id>', 'revoke the certificates with this key id (ssh-keygen -I) from --ca')
    .option('--ca <fingerprint>', 'the certificate authority of --serial / --key-id: a CA entry\'s fingerprint or unique prefix')
    .option('--reason <text>', 'why (kept in Redis, shown by `revoked`; one line, at most 1024 characters)')
    .option('--dry-run', 'show what would change, write nothing')
    .action(async (opts: RevokeOptions) => runRevoke(opts))

  revocationCommon(program.command('unrevoke').description('lift a revocation in Redis (the key is accepted again wherever it is on the allowlist)'))
    .option('--fingerprint <hex>', 'full 64-hex fingerprint or a unique prefix (8+ hex) of an allowlist entry or a revoked key')
    .option('--key-file <file>', 'public key file')
    .option('--serial <n>', 'a certificate serial revoked with --serial (with --ca)')
    .option('--key-id <id>', 'a certificate key id revoked with --key-id (with --ca)')
    .option('--ca <fingerprint>', 'the certificate authority of --serial / --key-id')
    .option('--dry-run', 'show what would change, write nothing')
    .action(async (opts: RevokeOptions) => runUnrevoke(opts))

  revocationCommon(program.command('revoked').description('list the keys revoked in Redis, with their allowlist role and description'))
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'json']).default('table'))
    .option('--wide', 'show full fingerprints')
    .action(async (opts: RevokedOptions) => runRevoked(opts))

  return program
}

await runCli(async () => {
  const program = buildProgram()
  for (const cmd of program.commands) configureProgram(cmd)
  await program.parseAsync(process.argv)
})
