#!/usr/bin/env node
/**
 * mcp-allowlist — manage the allowlist file named by `acl.allowlist_path` in the config.
 *
 *   mcp-allowlist add --config server_config.yml --key-file ./keys/client_public.pem --metadata '{"role": "api_client"}'
 *   mcp-allowlist add --config server_config.yml --fingerprint <64 hex> --metadata '{"role": "backup_server"}'
 *   mcp-allowlist list --config server_config.yml [--format table|json] [--show-metadata] [--filter-role ROLE]
 *   mcp-allowlist remove --config server_config.yml --fingerprint <fp or prefix> [<fp> …]
 *   mcp-allowlist export --config server_config.yml --output ./backups/allowlist_backup.json
 *   mcp-allowlist import --config server_config.yml --input ./backups/allowlist_backup.json --merge
 *   mcp-allowlist stats --config server_config.yml
 *
 * Writes take a lock on the file (`<allowlist>.lock`) and replace it atomically, so concurrent
 * runs never lose an entry and a crash never leaves a half-written file.
 * @module
 */
import { mkdir, readFile, stat } from 'node:fs/promises'
import { hostname, userInfo } from 'node:os'
import { dirname, resolve } from 'node:path'
import { Command, Option } from 'commander'
import { Allowlist, entryHasKey, isFingerprint, toFileRecord } from '../allowlist/allowlist.js'
import { loadAllowlistFile, updateAllowlistFile } from '../allowlist/allowlist-file.js'
import { writeFileAtomic } from '../allowlist/file-lock.js'
import type { AllowlistEntry } from '../allowlist/types.js'
import { loadConfig, parseConfig } from '../config/load-config.js'
import { AuthError } from '../errors.js'
import { loadPublicKeyFile } from '../keys/key-file.js'
import { PACKAGE_VERSION } from '../transport/http-server.js'
import { configureProgram, printJson, printLine, runCli, UsageError } from './shared/output.js'

interface CommonOptions {
  config?: string
  allowlist?: string
}

interface Target {
  path: string
  autoCreate: boolean
  metadataRequired: boolean
}

async function resolveTarget(opts: CommonOptions): Promise<Target> {
  const config = opts.config === undefined ? parseConfig('{}', { source: 'defaults' }).config : await loadConfig(opts.config)
  return {
    path: opts.allowlist === undefined ? config.acl.allowlist_path : resolve(opts.allowlist),
    autoCreate: config.acl.auto_create,
    metadataRequired: config.acl.metadata_required,
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
  keyFile?: string
  fingerprint?: string
  metadata?: string
  description?: string
  replace?: boolean
  dryRun?: boolean
}

async function runAdd(opts: AddOptions): Promise<void> {
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
  if (opts.format === 'json') {
    printJson(selected.map((e) => ({ ...toFileRecord(e), status: statusOf(e, now) })))
    return
  }
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
        const entry = list.findByPrefix(prefix)
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
        list.remove(fp)
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
  printLine('by role:')
  if (byRole.size === 0) printLine('  -')
  for (const [role, count] of Object.entries(stats.by_role)) printLine(`  ${role}: ${count}`)
}

// ---------------------------------------------------------------------------------------------

function common(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'YAML config; the allowlist is acl.allowlist_path (default ./keys/allowlist.json)')
    .option('--allowlist <file>', 'allowlist file to use instead of the one the config names')
}

function buildProgram(): Command {
  const program = configureProgram(new Command('mcp-allowlist'))
  program.description('Manage the mcp-pki-auth allowlist (keys allowed to authenticate, by SHA-256 fingerprint).')
  program.version(PACKAGE_VERSION)

  common(program.command('add').description('add a public key (or a bare fingerprint) to the allowlist'))
    .option('--key-file <file>', 'public key file: SPKI PEM, OpenSSH ssh-ed25519 line, or legacy MCP PUBLIC KEY')
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

  return program
}

await runCli(async () => {
  const program = buildProgram()
  for (const cmd of program.commands) configureProgram(cmd)
  await program.parseAsync(process.argv)
})
