#!/usr/bin/env node
/**
 * mcp-keygen — generate ed25519 key pairs, show fingerprints, extract public keys.
 *
 *   mcp-keygen --output-dir ./keys --key-name server
 *   mcp-keygen --show-fingerprint ./keys/server_public.pem
 *   mcp-keygen --extract-public --private-key ./keys/server_private.pem --output-file ./keys/server_public.pem
 *   mcp-keygen rotate start|switch|end|status --config server.yaml   (keygen-rotate.ts)
 * @module
 */
import { chmod, mkdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Command, Option } from 'commander'
import { formatTimestamp } from '../internal/clock.js'
import {
  assertWritable,
  formatOpenSshPublicKey,
  loadPrivateKeyFile,
  loadPublicKeyFile,
  looksLikePrivateKey,
  PASSPHRASE_ENV,
  promptHidden,
  readKeyFile,
  writeOpenSshPrivateKeyFile,
  writeOpenSshPublicKeyFile,
  writePrivateKeyFile,
  writePublicKeyFile,
  type PrivateKeyFormat,
  type PublicKeyFormat,
} from '../keys/key-file.js'
import { generateKeyPair, opensshFingerprintOf } from '../keys/key-pair.js'
import { rotateMain } from './keygen-rotate.js'
import { configureProgram, printJson, printLine, runCli, UsageError } from './shared/output.js'

type OutputFormat = 'text' | 'json'
type KeyFormat = 'pem' | 'openssh'

interface KeygenOptions {
  outputDir: string
  keyName: string
  comment?: string
  format: OutputFormat
  keyFormat: KeyFormat
  force?: boolean
  dryRun?: boolean
  encrypt?: boolean
  showFingerprint?: string
  extractPublic?: boolean
  privateKey?: string
  outputFile?: string
}

const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

function buildProgram(): Command {
  const program = new Command('mcp-keygen')
  program
    .description(
      'Generate ed25519 key pairs for mcp-pki-auth, show key fingerprints, and extract public keys.\n' +
        'Writes <output-dir>/<key-name>_private.pem (PKCS#8, mode 0600) and <key-name>_public.pem (SPKI, mode 0644).',
    )
    .option('--output-dir <dir>', 'directory for the new key files (created with mode 0700 if missing)', '.')
    .option('--key-name <name>', 'base name of the key files: <name>_private.pem, <name>_public.pem', 'mcp')
    .option('--comment <text>', 'free-text comment reported with the key (not stored in the PEM files)')
    .addOption(new Option('--format <format>', 'output format').choices(['text', 'json']).default('text'))
    .addOption(
      new Option(
        '--key-format <format>',
        'key file format: pem (<name>_private.pem PKCS#8 + <name>_public.pem SPKI) or openssh (<name> openssh-key-v1 + <name>.pub, for ssh-keygen -s and ssh-add)',
      )
        .choices(['pem', 'openssh'])
        .default('pem'),
    )
    .option('--force', 'replace existing key files')
    .option('--dry-run', 'print what would be written without writing anything')
    .option('--encrypt', `encrypt the private key (aes-256-cbc PKCS#8); passphrase from $${PASSPHRASE_ENV} or a prompt`)
    .option('--show-fingerprint <key-file>', 'print the fingerprint of a public or private key file')
    .option('--extract-public', 'write the public key of --private-key to --output-file (or stdout)')
    .option('--private-key <file>', 'private key file for --extract-public')
    .option('--output-file <file>', 'where --extract-public writes the public key (SPKI PEM)')
    .addHelpText(
      'after',
      `
Key files read: PKCS#8 PEM (optionally encrypted; passphrase from $${PASSPHRASE_ENV}),
OpenSSH ed25519 keys (unencrypted private keys and "ssh-ed25519 AAAA…" lines), and the
legacy "-----BEGIN MCP PRIVATE/PUBLIC KEY-----" format.

Fingerprints: hex SHA-256 of the raw 32-byte public key (what allowlists use), and the
OpenSSH form "SHA256:…" that \`ssh-keygen -l\` prints.

Examples:
  mcp-keygen --output-dir ./keys --key-name server
  mcp-keygen --output-dir ./keys --key-name server --comment "Production server key" --format json
  mcp-keygen --output-dir ./keys --key-name client --key-format openssh --comment alice@laptop
  mcp-keygen --show-fingerprint ./keys/server_public.pem
  mcp-keygen --extract-public --private-key ./keys/server_private.pem --output-file ./keys/server_public_extracted.pem

Exit status: 0 success, 1 failure, 2 usage error.`,
    )
  return configureProgram(program)
}

async function main(): Promise<void> {
  if (process.argv[2] === 'rotate') return rotateMain(process.argv.slice(3))
  const program = buildProgram()
  program.parse(process.argv)
  if (program.args.length > 0) throw new UsageError(`unexpected argument: ${program.args[0]}`)
  const opts = program.opts<KeygenOptions>()

  if (opts.showFingerprint !== undefined && opts.extractPublic) {
    throw new UsageError('--show-fingerprint and --extract-public cannot be combined')
  }
  if (opts.showFingerprint !== undefined) {
    rejectGenerationFlags(program, opts, '--show-fingerprint', ['privateKey', 'outputFile', 'force', 'dryRun', 'encrypt', 'keyFormat'])
    await showFingerprint(opts.showFingerprint, opts.format)
    return
  }
  if (opts.extractPublic) {
    rejectGenerationFlags(program, opts, '--extract-public', ['encrypt', 'keyFormat'])
    await extractPublic(opts)
    return
  }
  if (opts.privateKey !== undefined || opts.outputFile !== undefined) {
    throw new UsageError('--private-key and --output-file are only used with --extract-public')
  }
  await generate(opts)
}

function rejectGenerationFlags(program: Command, opts: KeygenOptions, mode: string, keys: (keyof KeygenOptions)[]): void {
  for (const key of ['outputDir', 'keyName', 'comment', ...keys] as (keyof KeygenOptions)[]) {
    if (opts[key] !== undefined && program.getOptionValueSource(key) === 'cli') {
      const flag = '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
      throw new UsageError(`${flag} cannot be used with ${mode}`)
    }
  }
}

// ---------------------------------------------------------------------------------------

async function generate(opts: KeygenOptions): Promise<void> {
  if (!KEY_NAME.test(opts.keyName)) {
    throw new UsageError(`invalid --key-name "${opts.keyName}": use letters, digits, '.', '_' or '-' (no path separators)`)
  }
  const openssh = opts.keyFormat === 'openssh'
  if (openssh && opts.encrypt) {
    throw new UsageError('--encrypt writes encrypted PKCS#8 (--key-format pem); protect an OpenSSH key with `ssh-keygen -p -f <key>` (mcp-pki-auth then reaches it through ssh-agent)')
  }
  const dir = opts.outputDir
  const privatePath = join(dir, openssh ? opts.keyName : `${opts.keyName}_private.pem`)
  const publicPath = join(dir, openssh ? `${opts.keyName}.pub` : `${opts.keyName}_public.pem`)
  const dirExists = await isDirectory(dir)
  if (!opts.force) {
    // Check both before writing either, so a refusal leaves nothing half-done.
    await assertWritable(privatePath)
    await assertWritable(publicPath)
  }

  if (opts.dryRun) {
    const plan = {
      dry_run: true,
      output_dir: dir,
      create_output_dir: !dirExists,
      private_key_path: privatePath,
      public_key_path: publicPath,
      encrypted: opts.encrypt === true,
      key_format: opts.keyFormat,
      overwrite: opts.force === true,
      comment: opts.comment ?? null,
    }
    if (opts.format === 'json') printJson(plan)
    else {
      printLine('dry run: nothing written')
      if (!dirExists) printLine(`would create directory: ${dir} (mode 0700)`)
      printLine(`would write private key: ${privatePath} (mode 0600${opts.encrypt ? ', encrypted' : ''})`)
      printLine(`would write public key:  ${publicPath} (mode 0644)`)
    }
    return
  }

  const passphrase = opts.encrypt ? await newPassphrase() : undefined
  if (!dirExists) {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await chmod(dir, 0o700)
  }
  const pair = generateKeyPair()
  if (openssh) {
    const sshOpts = { force: opts.force === true, ...(opts.comment !== undefined ? { comment: opts.comment } : {}) }
    await writeOpenSshPrivateKeyFile(privatePath, pair.privateKey, sshOpts)
    await writeOpenSshPublicKeyFile(publicPath, pair.publicKeyRaw, sshOpts)
  } else {
    await writePrivateKeyFile(privatePath, pair.privateKey, { force: opts.force === true, ...(passphrase !== undefined ? { passphrase } : {}) })
    await writePublicKeyFile(publicPath, pair.publicKey, { force: opts.force === true })
  }

  const info = {
    private_key_path: privatePath,
    public_key_path: publicPath,
    fingerprint: pair.fingerprint,
    fingerprint_sha256: opensshFingerprintOf(pair.publicKeyRaw),
    openssh_public_key: formatOpenSshPublicKey(pair.publicKeyRaw, opts.comment),
    comment: opts.comment ?? null,
    encrypted: passphrase !== undefined,
    key_format: opts.keyFormat,
    created_at: formatTimestamp(Date.now()),
  }
  if (opts.format === 'json') {
    printJson(info)
    return
  }
  printLine(`wrote private key: ${privatePath} (mode 0600${info.encrypted ? ', encrypted' : ''})`)
  printLine(`wrote public key:  ${publicPath} (mode 0644)`)
  printLine(`fingerprint:        ${info.fingerprint}`)
  printLine(`fingerprint_sha256: ${info.fingerprint_sha256}`)
  if (opts.comment) printLine(`comment:            ${opts.comment}`)
  printLine()
  printLine(`Add the public key to a peer's allowlist, e.g.:`)
  printLine(`  mcp-allowlist add --config <config.yml> --key-file ${publicPath}`)
  if (openssh) {
    printLine(`Certify it with your organisation's CA:  ssh-keygen -s <ca_key> -I <key_id> -n <principals> -V +8h ${publicPath}`)
    printLine(`or load it into ssh-agent:               ssh-add ${privatePath}`)
  }
  printLine(`Keep ${privatePath} secret; it never leaves this machine.`)
}

async function newPassphrase(): Promise<string> {
  const fromEnv = process.env[PASSPHRASE_ENV]
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  if (!process.stdin.isTTY) {
    throw new UsageError(`--encrypt needs a passphrase: set ${PASSPHRASE_ENV} or run in a terminal`)
  }
  const first = await promptHidden('New passphrase: ')
  if (first === '') throw new UsageError('empty passphrase; omit --encrypt for an unencrypted key')
  const second = await promptHidden('Repeat passphrase: ')
  if (first !== second) throw new UsageError('the passphrases do not match')
  return first
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    const st = await stat(path)
    if (!st.isDirectory()) throw new UsageError(`--output-dir ${path} exists and is not a directory`)
    return true
  } catch (err) {
    if (err instanceof UsageError) throw err
    return false
  }
}

// ---------------------------------------------------------------------------------------

interface KeyDescription {
  path: string
  key_type: 'public' | 'private'
  format: PublicKeyFormat | PrivateKeyFormat
  fingerprint: string
  fingerprint_sha256: string
  comment: string | null
}

async function describeKeyFile(path: string): Promise<KeyDescription> {
  const { text } = await readKeyFile(path)
  if (looksLikePrivateKey(text)) {
    const key = await loadPrivateKeyFile(path)
    return {
      path,
      key_type: 'private',
      format: key.format,
      fingerprint: key.fingerprint,
      fingerprint_sha256: opensshFingerprintOf(key.publicKeyRaw),
      comment: key.comment ?? null,
    }
  }
  const key = await loadPublicKeyFile(path)
  return {
    path,
    key_type: 'public',
    format: key.format,
    fingerprint: key.fingerprint,
    fingerprint_sha256: opensshFingerprintOf(key.publicKeyRaw),
    comment: key.comment ?? null,
  }
}

async function showFingerprint(path: string, format: OutputFormat): Promise<void> {
  const d = await describeKeyFile(path)
  if (format === 'json') {
    printJson(d)
    return
  }
  printLine(`fingerprint:        ${d.fingerprint}`)
  printLine(`fingerprint_sha256: ${d.fingerprint_sha256}`)
  printLine(`key:                ${path} (ed25519 ${d.key_type} key, ${d.format})`)
  if (d.comment) printLine(`comment:            ${d.comment}`)
}

async function extractPublic(opts: KeygenOptions): Promise<void> {
  if (opts.privateKey === undefined) throw new UsageError('--extract-public needs --private-key <file>')
  const key = await loadPrivateKeyFile(opts.privateKey)
  const info = {
    private_key_path: opts.privateKey,
    public_key_path: opts.outputFile ?? null,
    fingerprint: key.fingerprint,
    fingerprint_sha256: opensshFingerprintOf(key.publicKeyRaw),
  }
  if (opts.outputFile === undefined) {
    // No output file: the PEM itself is the output.
    if (opts.format === 'json') {
      printJson({ ...info, public_key_pem: key.publicKey.export({ type: 'spki', format: 'pem' }) })
    } else {
      process.stdout.write(key.publicKey.export({ type: 'spki', format: 'pem' }) as string)
    }
    return
  }
  if (!opts.force) await assertWritable(opts.outputFile)
  if (opts.dryRun) {
    if (opts.format === 'json') printJson({ dry_run: true, ...info })
    else {
      printLine('dry run: nothing written')
      printLine(`would write public key: ${opts.outputFile} (mode 0644)`)
      printLine(`fingerprint:        ${info.fingerprint}`)
    }
    return
  }
  await writePublicKeyFile(opts.outputFile, key.publicKey, { force: opts.force === true })
  if (opts.format === 'json') {
    printJson(info)
    return
  }
  printLine(`wrote public key: ${opts.outputFile} (mode 0644)`)
  printLine(`fingerprint:        ${info.fingerprint}`)
  printLine(`fingerprint_sha256: ${info.fingerprint_sha256}`)
}

await runCli(main)
