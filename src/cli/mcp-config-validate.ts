#!/usr/bin/env node
/**
 * mcp-config-validate — check a configuration file, its key files and its allowlist.
 *
 *   mcp-config-validate server_config.yml
 *   mcp-config-validate --check-keys --config server_config.yml
 *   mcp-config-validate --check-allowlist --config server_config.yml
 *   mcp-config-validate --check-redis --config server_config.yml
 *   mcp-config-validate --init server server_config.yml     (writes a starting config)
 *
 * Prints `ok: <file> is valid` (exit 0) or one `error: …` line per problem (exit 1); risky but
 * allowed settings print `warning: …`. Environment overrides (MCP_*) apply, as they would at
 * start-up. It finds what the server would refuse at start: TLS files are always checked (they
 * exist, parse, the key matches the certificate), and so is auth.revoked_keys_file (a KRL that
 * loads); --check-allowlist adds the allowlist's
 * permissions; --check-redis, and --check-keys, connect to a configured Redis. Usage errors exit 2.
 * @module
 */
import type { Stats } from 'node:fs'
import { stat } from 'node:fs/promises'
import { Command, Option } from 'commander'
import { loadAllowlistFile } from '../allowlist/allowlist-file.js'
import { ConfigError, isAuthError } from '../errors.js'
import { loadConfigFile } from '../config/load-config.js'
import type { Config } from '../config/types.js'
import { PASSPHRASE_ENV, loadPrivateKeyFile, loadPublicKeyFile } from '../keys/key-file.js'
import { fingerprintOf, opensshFingerprintOf } from '../keys/key-pair.js'
import { checkAgent, checkCertificate } from './shared/check-key-sources.js'
import { configureProgram, fail, printJson, printLine, runCli, UsageError, warn } from './shared/output.js'
import { checkAllowlistPermissions, checkRedis, checkRevokedKeysFile, checkTlsFiles } from './shared/runtime-checks.js'
import { nextSteps, writeStarterConfig, type ConfigRole } from './shared/starter-config.js'

interface ValidateOptions {
  config?: string
  checkKeys?: boolean
  checkAllowlist?: boolean
  checkRedis?: boolean
  init?: ConfigRole
  force?: boolean
  format: 'text' | 'json'
}

interface ExpiredEntry {
  fingerprint: string
  not_after: string
  description: string | null
}

interface Report {
  file: string
  valid: boolean
  errors: string[]
  warnings: string[]
  /** Informational lines (text mode prints them on stdout). */
  info: string[]
  keys?: { private_key_path: string; public_key_path: string; fingerprint: string | null; openssh_fingerprint: string | null }
  allowlist?: { path: string; exists: boolean; entries: number; fingerprint_only: number; expired: ExpiredEntry[] }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

function short(fingerprint: string): string {
  return `${fingerprint.slice(0, 16)}…`
}

async function checkKeys(config: Config, report: Report): Promise<void> {
  const privPath = config.keys.private_key_path
  const pubPath = config.keys.public_key_path
  const keys: NonNullable<Report['keys']> = { private_key_path: privPath, public_key_path: pubPath, fingerprint: null, openssh_fingerprint: null }
  report.keys = keys
  const privStat = await statOrUndefined(privPath)
  const pubStat = await statOrUndefined(pubPath)
  if (!privStat && !pubStat && config.keys.auto_generate) {
    report.warnings.push(`keys: ${privPath} and ${pubPath} do not exist; they will be generated on first start (keys.auto_generate is true)`)
    return
  }

  let privFingerprint: string | undefined
  if (config.keys.agent) {
    // The private key file is not read when the agent signs: check the agent instead.
    const pub = pubStat ? await loadPublicKeyFile(pubPath).catch(() => undefined) : undefined
    const fp = await checkAgent(pub?.publicKeyRaw, report)
    keys.fingerprint = fp ?? null
    if (config.keys.certificate_path !== null) await checkCertificate(config.keys.certificate_path, keys.fingerprint, Date.now(), report)
    return
  }
  if (!privStat) {
    report.errors.push(`keys.private_key_path: ${privPath}: no such file (create one with: mcp-keygen --output-dir <dir> --key-name <name>)`)
  } else {
    if (process.platform !== 'win32' && (privStat.mode & 0o077) !== 0) {
      const shown = (privStat.mode & 0o777).toString(8).padStart(4, '0')
      report.errors.push(`keys.private_key_path: ${privPath}: permissions ${shown} are too open; a private key must be readable only by its owner. Fix: chmod 600 ${privPath}`)
    }
    try {
      const pair = await loadPrivateKeyFile(privPath, { allowInsecurePermissions: true, noPrompt: true })
      privFingerprint = pair.fingerprint
      keys.fingerprint = pair.fingerprint
      keys.openssh_fingerprint = opensshFingerprintOf(pair.publicKeyRaw)
    } catch (err) {
      const hint = messageOf(err).includes(PASSPHRASE_ENV) ? ` (set ${PASSPHRASE_ENV} to check an encrypted key)` : ''
      report.errors.push(`keys.private_key_path: ${messageOf(err)}${hint}`)
    }
  }

  if (!pubStat) {
    report.errors.push(`keys.public_key_path: ${pubPath}: no such file${privStat ? ` (extract it with: mcp-keygen --extract-public --private-key ${privPath} --output-file ${pubPath})` : ''}`)
    return
  }
  try {
    const pub = await loadPublicKeyFile(pubPath)
    if (privFingerprint !== undefined && pub.fingerprint !== privFingerprint) {
      report.errors.push(
        `keys.public_key_path: ${pubPath} does not match the private key (public key fingerprint ${short(pub.fingerprint)}, private key's ${short(privFingerprint)})`,
      )
    } else if (privFingerprint === undefined && keys.fingerprint === null) {
      keys.fingerprint = pub.fingerprint
      keys.openssh_fingerprint = opensshFingerprintOf(pub.publicKeyRaw)
    }
  } catch (err) {
    report.errors.push(`keys.public_key_path: ${messageOf(err)}`)
  }
  if (config.keys.certificate_path !== null) await checkCertificate(config.keys.certificate_path, keys.fingerprint, Date.now(), report)
  if (keys.fingerprint !== null) {
    report.info.push(`fingerprint: ${keys.fingerprint}`)
    if (keys.openssh_fingerprint !== null) report.info.push(`openssh fingerprint: ${keys.openssh_fingerprint}`)
  }
}

async function checkAllowlist(config: Config, report: Report, now: number): Promise<void> {
  const path = config.acl.allowlist_path
  const summary: NonNullable<Report['allowlist']> = { path, exists: false, entries: 0, fingerprint_only: 0, expired: [] }
  report.allowlist = summary
  if (!(await statOrUndefined(path))) {
    if (config.acl.auto_create) {
      report.warnings.push(`acl.allowlist_path: ${path} does not exist; an empty allowlist will be created on first start (acl.auto_create is true)`)
    } else {
      report.errors.push(`acl.allowlist_path: ${path}: no such file (acl.auto_create is false)`)
    }
    return
  }
  summary.exists = true
  let list
  try {
    list = await loadAllowlistFile(path)
  } catch (err) {
    report.errors.push(`acl.allowlist_path: ${messageOf(err)}`)
    return
  }
  for (const entry of list.entries()) {
    summary.entries++
    if (entry.publicKeyRaw === undefined) {
      summary.fingerprint_only++
    } else if (fingerprintOf(entry.publicKeyRaw) !== entry.fingerprint) {
      report.errors.push(`allowlist entry ${short(entry.fingerprint)}: fingerprint does not match its public key (SHA-256 of the key is ${fingerprintOf(entry.publicKeyRaw)})`)
    }
    if (entry.notAfter !== undefined && entry.notAfter <= now) {
      const when = new Date(entry.notAfter).toISOString()
      summary.expired.push({ fingerprint: entry.fingerprint, not_after: when, description: entry.description ?? null })
      report.warnings.push(`allowlist entry ${short(entry.fingerprint)}${entry.description ? ` (${entry.description})` : ''} expired ${when}`)
    }
    if (config.acl.metadata_required && Object.keys(entry.metadata).length === 0) {
      report.errors.push(`allowlist entry ${short(entry.fingerprint)}: no metadata (acl.metadata_required is true)`)
    }
  }
  await checkAllowlistPermissions(config, report)
  if (summary.entries === 0) report.warnings.push(`acl.allowlist_path: ${path} is empty; no peer can authenticate`)
  report.info.push(
    `allowlist: ${path}: ${summary.entries} ${summary.entries === 1 ? 'entry' : 'entries'} (${summary.expired.length} expired, ${summary.fingerprint_only} fingerprint-only)`,
  )
}

function buildProgram(): Command {
  const program = new Command('mcp-config-validate')
    .description('Validate an mcp-pki-auth configuration file, and optionally its key files and allowlist')
    .argument('[file]', 'configuration file (YAML)')
    .option('-c, --config <file>', 'configuration file (same as the FILE argument)')
    .option('--check-keys', 'check the private and public key files: exist, parse, 0600, matching pair; keys.certificate_path is for that key and valid; with keys.agent, the agent holds the key')
    .option('--check-allowlist', 'check the allowlist file: parses, fingerprints match keys, expired entries, not writable by others')
    .option('--check-redis', 'connect to auth.nonce_store.url as the server would, and check that it cannot evict replay entries (maxmemory-policy noeviction; auth.nonce_store.eviction_checked where CONFIG is disabled) (also done by --check-keys)')
    .addOption(new Option('--init <role>', 'write a starting configuration to FILE instead of checking one').choices(['server', 'client']))
    .option('--force', 'with --init: replace FILE if it exists')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      '\nExamples:\n  mcp-config-validate --init server server_config.yml\n  mcp-config-validate server_config.yml\n' +
        '  mcp-config-validate --check-keys --check-allowlist --config server_config.yml\n  mcp-config-validate --check-redis --config server_config.yml\n',
    )
  return configureProgram(program)
}

async function initConfig(file: string, role: ConfigRole, force: boolean): Promise<void> {
  try {
    await writeStarterConfig(file, role, force)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    fail(`${file} already exists; not replacing it`, `check it with: mcp-config-validate ${file}  (or replace it: --init ${role} --force)`)
    return
  }
  printLine(`wrote ${file} (a starting ${role} configuration)`)
  printLine('next:')
  for (const step of nextSteps(role, file)) printLine(`  ${step}`)
}

async function main(): Promise<void> {
  const program = buildProgram()
  program.parse(process.argv)
  const opts = program.opts<ValidateOptions>()
  const positional = program.args[0]
  if (program.args.length > 1) throw new UsageError(`expected one configuration file, got ${program.args.length}`)
  if (positional !== undefined && opts.config !== undefined && positional !== opts.config) {
    throw new UsageError(`two different configuration files given: ${positional} and --config ${opts.config}`)
  }
  const file = positional ?? opts.config
  if (file === undefined) throw new UsageError('no configuration file given', 'usage: mcp-config-validate FILE  or  mcp-config-validate --config FILE  or  mcp-config-validate --init server|client FILE')
  if (opts.init !== undefined) {
    await initConfig(file, opts.init, opts.force === true)
    return
  }

  const report: Report = { file, valid: false, errors: [], warnings: [], info: [] }
  let config: Config | undefined
  try {
    const loaded = await loadConfigFile(file)
    config = loaded.config
    report.warnings.push(...loaded.warnings)
    const m = config.metrics
    if (m.enabled) report.info.push(`metrics: GET /metrics on ${m.host.includes(':') ? `[${m.host}]` : m.host}:${m.port}, a listener of its own (GET /ready stays on the public port)`)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    for (const problem of err.problems) report.errors.push(problem.startsWith(`${file}:`) ? problem : `${file}: ${problem}`)
  }
  if (config) {
    try {
      if (opts.checkKeys) await checkKeys(config, report)
      if (opts.checkAllowlist) await checkAllowlist(config, report, Date.now())
      await checkTlsFiles(config, report)
      await checkRevokedKeysFile(config, report)
      if (opts.checkRedis || opts.checkKeys) await checkRedis(config, report)
    } catch (err) {
      if (!isAuthError(err) && !(err instanceof Error && 'code' in err)) throw err
      report.errors.push(messageOf(err))
    }
  }
  report.valid = report.errors.length === 0

  if (opts.format === 'json') {
    printJson(report)
  } else {
    for (const line of report.info) printLine(line)
    for (const w of report.warnings) warn(w)
    for (const e of report.errors) fail(e)
    if (report.valid) printLine(`ok: ${file} is valid`)
  }
  process.exitCode = report.valid ? 0 : 1
}

await runCli(main)
