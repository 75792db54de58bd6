/**
 * Key files: writing ed25519 keys as PEM with safe permissions, and loading them back from
 * every format a user is likely to hold.
 *
 * Private keys load from PKCS#8 PEM, encrypted PKCS#8 PEM, unencrypted OpenSSH
 * (`-----BEGIN OPENSSH PRIVATE KEY-----`) and the legacy `-----BEGIN MCP PRIVATE KEY-----`
 * (base64 of the raw 32-byte seed). Public keys load from SPKI PEM, an OpenSSH
 * `ssh-ed25519 AAAA… comment` line, the legacy `-----BEGIN MCP PUBLIC KEY-----` and a bare
 * base64 32-byte key. Like ssh, a private key file readable by group or others is refused.
 *
 * Every problem is an AuthError (`key_file_invalid`, `key_file_permissions`,
 * `key_file_exists`) whose message names the file and never contains key material.
 * @module
 */
import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { lstat, open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { AuthError } from '../errors.js'
import {
  fingerprintOf,
  keyPairFromPrivateKey,
  privateKeyFromSeed,
  publicKeyFromRaw,
  rawPublicKey,
  type Ed25519KeyPair,
} from './key-pair.js'
import { ed25519PublicKeyProblem, unusableKeyError } from './point-check.js'

/** Largest key file read (a key file is a few hundred bytes). */
export const MAX_KEY_FILE_SIZE = 64 * 1024
/** Environment variable holding the passphrase of an encrypted private key. */
export const PASSPHRASE_ENV = 'MCP_KEY_PASSPHRASE'
/** Cipher used for encrypted PKCS#8 private keys. */
export const PRIVATE_KEY_CIPHER = 'aes-256-cbc'

export type PrivateKeyFormat = 'pkcs8' | 'pkcs8-encrypted' | 'openssh' | 'legacy-mcp'
export type PublicKeyFormat = 'spki' | 'openssh' | 'legacy-mcp' | 'raw-base64'

/** A private key as loaded from a file: the key pair, the format it was in, any comment. */
export interface LoadedPrivateKey extends Ed25519KeyPair {
  format: PrivateKeyFormat
  /** The comment of an OpenSSH key, if any. */
  comment?: string
}

/** A public key as parsed from a file or string. */
export interface LoadedPublicKey {
  publicKey: KeyObject
  /** Raw 32-byte public key. */
  publicKeyRaw: Buffer
  /** Lowercase hex SHA-256 of the raw public key. */
  fingerprint: string
  format: PublicKeyFormat
  /** The comment of an OpenSSH public key line, if any. */
  comment?: string
}

export interface WritePrivateKeyOptions {
  /** Encrypts the PKCS#8 PEM (aes-256-cbc, PBES2) with this passphrase. */
  passphrase?: string
  /** Replaces an existing file (atomically, via a 0600 temporary file and rename). */
  force?: boolean
}

export interface WritePublicKeyOptions {
  force?: boolean
}

export interface LoadPrivateKeyOptions {
  /** Passphrase for an encrypted key; falls back to $MCP_KEY_PASSPHRASE, then a TTY prompt. */
  passphrase?: string
  /** Skips the "readable only by its owner" check (tests, Windows). */
  allowInsecurePermissions?: boolean
  /** Disables the interactive prompt even when stdin is a TTY. */
  noPrompt?: boolean
}

export interface ParsePrivateKeyOptions {
  passphrase?: string
}

// ---------------------------------------------------------------------------------------
// Encoding

/** PKCS#8 PEM of an ed25519 private key, encrypted when a passphrase is given. */
export function encodePrivateKeyPem(privateKey: KeyObject, passphrase?: string): string {
  assertEd25519(privateKey, 'private')
  if (passphrase !== undefined) {
    if (passphrase.length === 0) throw new RangeError('passphrase must not be empty')
    return privateKey.export({ type: 'pkcs8', format: 'pem', cipher: PRIVATE_KEY_CIPHER, passphrase }) as string
  }
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
}

/** SPKI PEM of an ed25519 public key. */
export function encodePublicKeyPem(publicKey: KeyObject): string {
  assertEd25519(publicKey, 'public')
  return publicKey.export({ type: 'spki', format: 'pem' }) as string
}

/** OpenSSH authorized_keys line: `ssh-ed25519 AAAA… [comment]`. */
export function formatOpenSshPublicKey(publicKeyRaw: Uint8Array, comment?: string): string {
  const blob = Buffer.concat([sshString(Buffer.from('ssh-ed25519')), sshString(publicKeyRaw)])
  const line = `ssh-ed25519 ${blob.toString('base64')}`
  return comment ? `${line} ${comment.replace(/[\r\n]+/g, ' ')}` : line
}

function assertEd25519(key: KeyObject, type: 'private' | 'public'): void {
  if (key?.type !== type || key.asymmetricKeyType !== 'ed25519') {
    throw new TypeError(`expected an ed25519 ${type} KeyObject`)
  }
}

// ---------------------------------------------------------------------------------------
// Writing

/**
 * Writes a PKCS#8 PEM private key with mode 0600 from its first byte (umask-proof).
 * Refuses to replace an existing file unless `force`.
 */
export async function writePrivateKeyFile(path: string, privateKey: KeyObject, opts: WritePrivateKeyOptions = {}): Promise<void> {
  const pem = encodePrivateKeyPem(privateKey, opts.passphrase)
  await writeKeyFile(path, pem, 0o600, opts.force === true)
}

/** Writes an SPKI PEM public key with mode 0644. Refuses to replace an existing file unless `force`. */
export async function writePublicKeyFile(path: string, publicKey: KeyObject, opts: WritePublicKeyOptions = {}): Promise<void> {
  const pem = encodePublicKeyPem(publicKey)
  await writeKeyFile(path, pem, 0o644, opts.force === true)
}

/** Throws key_file_exists when `path` exists (as anything, including a dangling symlink). */
export async function assertWritable(path: string): Promise<void> {
  try {
    await lstat(path)
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return
    throw fileError(path, err)
  }
  throw new AuthError('key_file_exists', `${path} exists; use --force to replace it`, { path })
}

async function writeKeyFile(path: string, contents: string, mode: number, force: boolean): Promise<void> {
  if (!force) {
    // O_EXCL: fails on any existing file or symlink, so nothing is ever overwritten.
    await writeNew(path, contents, mode)
    return
  }
  try {
    const st = await lstat(path)
    if (st.isDirectory()) throw new AuthError('key_file_invalid', `${path}: is a directory`, { path })
  } catch (err) {
    if (err instanceof AuthError) throw err
    if (errnoCode(err) !== 'ENOENT') throw fileError(path, err)
  }
  // Replace atomically: a fresh temp file (mode set at creation) renamed over the target.
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  await writeNew(tmp, contents, mode)
  try {
    await rename(tmp, path)
  } catch (err) {
    await unlink(tmp).catch(() => {})
    throw fileError(path, err)
  }
}

async function writeNew(path: string, contents: string, mode: number): Promise<void> {
  let handle
  try {
    handle = await open(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | noFollow(), mode)
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') {
      throw new AuthError('key_file_exists', `${path} exists; use --force to replace it`, { path })
    }
    throw fileError(path, err)
  }
  try {
    await handle.chmod(mode) // the umask may have removed bits; it can never have added any
    await handle.writeFile(contents, 'utf8')
    await handle.sync()
  } catch (err) {
    await handle.close().catch(() => {})
    await unlink(path).catch(() => {})
    throw fileError(path, err)
  }
  await handle.close()
}

function noFollow(): number {
  return typeof fsConstants.O_NOFOLLOW === 'number' ? fsConstants.O_NOFOLLOW : 0
}

// ---------------------------------------------------------------------------------------
// Reading files

/**
 * Loads an ed25519 private key. Refuses a file readable by group or others
 * (key_file_permissions) unless `allowInsecurePermissions`. An encrypted key takes its
 * passphrase from `opts.passphrase`, then $MCP_KEY_PASSPHRASE, then an interactive prompt
 * when stdin is a TTY.
 */
export async function loadPrivateKeyFile(path: string, opts: LoadPrivateKeyOptions = {}): Promise<LoadedPrivateKey> {
  const { text, mode } = await readKeyFile(path)
  // A file that is not a private key at all gets the clearer "this is a public key" error.
  const checkMode = looksLikePrivateKey(text) && !opts.allowInsecurePermissions && process.platform !== 'win32'
  if (checkMode && (mode & 0o077) !== 0) {
    const shown = (mode & 0o777).toString(8).padStart(4, '0')
    throw new AuthError(
      'key_file_permissions',
      `${path}: permissions ${shown} are too open; a private key must be readable only by its owner. Fix: chmod 600 ${path}`,
      { path },
    )
  }
  let passphrase = opts.passphrase
  if (passphrase === undefined && isEncryptedPkcs8(text)) {
    const fromEnv = process.env[PASSPHRASE_ENV]
    if (fromEnv !== undefined && fromEnv !== '') passphrase = fromEnv
    else if (!opts.noPrompt && process.stdin.isTTY) passphrase = await promptHidden(`Passphrase for ${path}: `)
    else {
      throw new AuthError('key_file_invalid', `${path}: encrypted private key: set ${PASSPHRASE_ENV}`, { path })
    }
  }
  return parsePrivateKey(text, path, { ...(passphrase !== undefined ? { passphrase } : {}) })
}

/** Loads an ed25519 public key from any supported public key format. */
export async function loadPublicKeyFile(path: string): Promise<LoadedPublicKey> {
  const { text } = await readKeyFile(path)
  return parsePublicKey(text, path)
}

/** True when the text looks like a private key of any kind (PEM or OpenSSH). */
export function looksLikePrivateKey(text: string): boolean {
  return /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text)
}

/** Reads a key file as text; missing, unreadable, oversized or binary files are key_file_invalid. */
export async function readKeyFile(path: string): Promise<{ text: string; mode: number }> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch (err) {
    throw fileError(path, err)
  }
  try {
    const st = await handle.stat()
    if (st.isDirectory()) throw new AuthError('key_file_invalid', `${path}: is a directory, not a key file`, { path })
    if (!st.isFile()) throw new AuthError('key_file_invalid', `${path}: not a regular file`, { path })
    if (st.size > MAX_KEY_FILE_SIZE) {
      throw new AuthError('key_file_invalid', `${path}: ${st.size} bytes is too large for a key file`, { path })
    }
    if (st.size === 0) throw new AuthError('key_file_invalid', `${path}: file is empty`, { path })
    const buf = await handle.readFile()
    if (buf.includes(0)) throw new AuthError('key_file_invalid', `${path}: binary data, not a PEM or OpenSSH key file`, { path })
    return { text: buf.toString('utf8'), mode: st.mode }
  } catch (err) {
    if (err instanceof AuthError) throw err
    throw fileError(path, err)
  } finally {
    await handle.close()
  }
}

// ---------------------------------------------------------------------------------------
// Parsing private keys

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/

/**
 * Parses an ed25519 private key from text (PKCS#8 PEM, encrypted PKCS#8 PEM with
 * `opts.passphrase`, OpenSSH, legacy MCP). `label` (usually the path) prefixes messages.
 */
export function parsePrivateKey(text: string, label = 'private key', opts: ParsePrivateKeyOptions = {}): LoadedPrivateKey {
  const block = PEM_BLOCK.exec(text)
  if (!block) {
    if (/-----BEGIN [A-Z0-9 ]+-----/.test(text)) {
      throw invalid(label, 'truncated PEM: the -----END …----- line is missing')
    }
    if (looksLikeOpenSshPublicLine(text) || isBareBase64Key(text)) {
      throw invalid(label, 'this is a public key, not a private key')
    }
    throw invalid(label, 'not a private key file (no -----BEGIN … PRIVATE KEY----- line)')
  }
  const kind = block[1]!
  const body = block[2]!
  switch (kind) {
    case 'PRIVATE KEY':
      return { ...fromNodePrivateKey(text, label), format: 'pkcs8' }
    case 'ENCRYPTED PRIVATE KEY': {
      if (opts.passphrase === undefined) throw invalid(label, `encrypted private key: set ${PASSPHRASE_ENV}`)
      return { ...fromNodePrivateKey(text, label, opts.passphrase), format: 'pkcs8-encrypted' }
    }
    case 'OPENSSH PRIVATE KEY':
      return parseOpenSshPrivateKey(body, label)
    case 'MCP PRIVATE KEY': {
      const seed = decodeBase64Body(body, label)
      if (seed.length !== 32) throw invalid(label, `legacy MCP private key must hold 32 bytes, found ${seed.length}`)
      return { ...keyPairFromPrivateKey(privateKeyFromSeed(seed)), format: 'legacy-mcp' }
    }
    case 'RSA PRIVATE KEY':
      throw invalid(label, 'expected an ed25519 private key, got an rsa private key')
    case 'EC PRIVATE KEY':
      throw invalid(label, 'expected an ed25519 private key, got an ec private key')
    case 'DSA PRIVATE KEY':
      throw invalid(label, 'expected an ed25519 private key, got a dsa private key')
    case 'PUBLIC KEY':
    case 'MCP PUBLIC KEY':
    case 'RSA PUBLIC KEY':
      throw invalid(label, 'this is a public key, not a private key')
    case 'CERTIFICATE':
      throw invalid(label, 'this is a certificate, not an ed25519 private key')
    default:
      throw invalid(label, `unsupported PEM block "${kind}"; expected an ed25519 private key`)
  }
}

function fromNodePrivateKey(pem: string, label: string, passphrase?: string): Ed25519KeyPair {
  let key: KeyObject
  try {
    key = createPrivateKey(passphrase === undefined ? { key: pem, format: 'pem' } : { key: pem, format: 'pem', passphrase })
  } catch (err) {
    if (passphrase !== undefined) throw invalid(label, 'cannot decrypt the private key: wrong passphrase or corrupt file', err)
    throw invalid(label, 'corrupt or truncated PEM: not a readable PKCS#8 private key', err)
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw invalid(label, `expected an ed25519 private key, got ${withArticle(key.asymmetricKeyType ?? 'unknown')} private key`)
  }
  return keyPairFromPrivateKey(key)
}

function isEncryptedPkcs8(text: string): boolean {
  return text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----')
}

/** Parses the openssh-key-v1 container (unencrypted, one ed25519 key). */
function parseOpenSshPrivateKey(body: string, label: string): LoadedPrivateKey {
  const data = decodeBase64Body(body, label)
  const r = new SshReader(data, label)
  const magic = Buffer.from('openssh-key-v1\0', 'latin1')
  if (data.length < magic.length || !data.subarray(0, magic.length).equals(magic)) {
    throw invalid(label, 'not an openssh-key-v1 private key (bad magic)')
  }
  r.skip(magic.length)
  const cipher = r.string().toString('latin1')
  const kdf = r.string().toString('latin1')
  r.string() // kdf options
  if (cipher !== 'none' || kdf !== 'none') {
    throw invalid(
      label,
      `passphrase-protected OpenSSH keys (cipher ${cipher}) are not supported; ` +
        'remove the passphrase on a copy with `ssh-keygen -p -N "" -f <copy>` or generate a key with mcp-keygen --encrypt',
    )
  }
  const count = r.u32()
  if (count !== 1) throw invalid(label, `OpenSSH key file holds ${count} keys; exactly one is supported`)
  const outerPub = r.string()
  const priv = new SshReader(r.string(), label)
  if (!r.atEnd()) throw invalid(label, 'trailing data after the OpenSSH private section')
  const check1 = priv.u32()
  const check2 = priv.u32()
  if (check1 !== check2) throw invalid(label, 'corrupt OpenSSH private key (check integers differ)')
  const keyType = priv.string().toString('latin1')
  if (keyType !== 'ssh-ed25519') {
    throw invalid(label, `expected an ed25519 private key, got ${describeSshType(keyType)} OpenSSH key`)
  }
  const pub = priv.string()
  const secret = priv.string()
  const comment = priv.string().toString('utf8')
  // padding 1, 2, 3, … up to the cipher block size
  let expected = 1
  while (!priv.atEnd()) {
    if (priv.u8() !== expected++) throw invalid(label, 'corrupt OpenSSH private key (bad padding)')
  }
  if (pub.length !== 32 || secret.length !== 64) throw invalid(label, 'corrupt OpenSSH ed25519 key (wrong key length)')
  if (!secret.subarray(32).equals(pub)) throw invalid(label, 'corrupt OpenSSH ed25519 key (public half does not match)')
  const outer = new SshReader(outerPub, label)
  const outerType = outer.string().toString('latin1')
  const outerKey = outer.string()
  if (outerType !== 'ssh-ed25519' || !outerKey.equals(pub)) {
    throw invalid(label, 'corrupt OpenSSH ed25519 key (public key does not match the private section)')
  }
  const pair = keyPairFromPrivateKey(privateKeyFromSeed(secret.subarray(0, 32)))
  if (!pair.publicKeyRaw.equals(pub)) throw invalid(label, 'corrupt OpenSSH ed25519 key (seed does not produce its public key)')
  return { ...pair, format: 'openssh', ...(comment ? { comment } : {}) }
}

// ---------------------------------------------------------------------------------------
// Parsing public keys

/**
 * Parses an ed25519 public key from text: SPKI PEM, an OpenSSH `ssh-ed25519 AAAA… comment`
 * line, a legacy `-----BEGIN MCP PUBLIC KEY-----` block, or bare base64 of the 32 raw bytes.
 * A private key is refused with a hint to use `mcp-keygen --extract-public`.
 */
export function parsePublicKey(text: string, label = 'public key'): LoadedPublicKey {
  if (looksLikePrivateKey(text)) {
    throw invalid(
      label,
      'this is a private key, not a public key; extract the public key with ' +
        '`mcp-keygen --extract-public --private-key <file> --output-file <public.pem>`',
    )
  }
  const block = PEM_BLOCK.exec(text)
  if (block) {
    const kind = block[1]!
    if (kind === 'PUBLIC KEY') {
      let key: KeyObject
      try {
        key = createPublicKey({ key: block[0], format: 'pem' })
      } catch (err) {
        throw invalid(label, 'corrupt or truncated PEM: not a readable SPKI public key', err)
      }
      if (key.asymmetricKeyType !== 'ed25519') {
        throw invalid(label, `expected an ed25519 public key, got ${withArticle(key.asymmetricKeyType ?? 'unknown')} public key`)
      }
      return fromRaw(rawPublicKey(key), 'spki', label)
    }
    if (kind === 'MCP PUBLIC KEY') return fromRaw(decodeBase64Body(block[2]!, label), 'legacy-mcp', label)
    if (kind === 'RSA PUBLIC KEY') throw invalid(label, 'expected an ed25519 public key, got an rsa public key')
    if (kind === 'CERTIFICATE') throw invalid(label, 'this is a certificate, not an ed25519 public key')
    throw invalid(label, `unsupported PEM block "${kind}"; expected an ed25519 public key`)
  }
  if (/-----BEGIN [A-Z0-9 ]+-----/.test(text)) throw invalid(label, 'truncated PEM: the -----END …----- line is missing')

  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  if (lines.length === 0) throw invalid(label, 'no public key found (empty)')
  if (lines.length > 1) throw invalid(label, `expected one public key, found ${lines.length} lines`)
  const line = lines[0]!
  if (isBareBase64Key(line)) return fromRaw(Buffer.from(line, 'base64'), 'raw-base64', label)
  return parseOpenSshPublicLine(line, label)
}

function parseOpenSshPublicLine(line: string, label: string): LoadedPublicKey {
  const tokens = line.split(/\s+/)
  // authorized_keys lines may start with options; the key type token marks the key.
  const at = tokens.findIndex((t) => /^(ssh-[a-z0-9]+|ecdsa-sha2-[a-z0-9]+|sk-[a-z0-9@.-]+)$/.test(t))
  if (at < 0) throw invalid(label, 'not a recognised public key (expected SPKI PEM or an "ssh-ed25519 AAAA…" line)')
  const type = tokens[at]!
  if (type !== 'ssh-ed25519') throw invalid(label, `expected an ed25519 public key, got ${describeSshType(type)} OpenSSH key`)
  const b64 = tokens[at + 1]
  if (!b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw invalid(label, 'OpenSSH public key line has no base64 key')
  const blob = Buffer.from(b64, 'base64')
  const r = new SshReader(blob, label)
  const innerType = r.string().toString('latin1')
  const raw = r.string()
  if (innerType !== 'ssh-ed25519' || !r.atEnd()) throw invalid(label, 'corrupt OpenSSH public key blob')
  const comment = tokens.slice(at + 2).join(' ')
  return { ...fromRaw(raw, 'openssh', label), ...(comment ? { comment } : {}) }
}

function fromRaw(raw: Buffer, format: PublicKeyFormat, label: string): LoadedPublicKey {
  if (raw.length !== 32) throw invalid(label, `an ed25519 public key is 32 bytes, found ${raw.length}`)
  const problem = ed25519PublicKeyProblem(raw)
  if (problem !== undefined) throw unusableKeyError(problem, label, { path: label })
  return { publicKey: publicKeyFromRaw(raw, label), publicKeyRaw: Buffer.from(raw), fingerprint: fingerprintOf(raw), format }
}

function looksLikeOpenSshPublicLine(text: string): boolean {
  return /(^|\s)(ssh-[a-z0-9]+|ecdsa-sha2-[a-z0-9]+) AAAA/.test(text)
}

function isBareBase64Key(text: string): boolean {
  const t = text.trim()
  return /^[A-Za-z0-9+/]{43}=$/.test(t) && Buffer.from(t, 'base64').length === 32
}

// ---------------------------------------------------------------------------------------
// Helpers

function decodeBase64Body(body: string, label: string): Buffer {
  const lines = body.split(/\r?\n/).map((l) => l.trim())
  // Skip RFC 1421 headers (e.g. "Proc-Type: …") should they appear.
  const data = lines.filter((l) => l !== '' && !l.includes(':')).join('')
  if (data === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(data) || data.length % 4 !== 0) {
    throw invalid(label, 'corrupt PEM: the body is not valid base64')
  }
  return Buffer.from(data, 'base64')
}

class SshReader {
  private pos = 0
  constructor(
    private readonly buf: Buffer,
    private readonly label: string,
  ) {}
  skip(n: number): void {
    this.need(n)
    this.pos += n
  }
  u8(): number {
    this.need(1)
    return this.buf[this.pos++]!
  }
  u32(): number {
    this.need(4)
    const v = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }
  string(): Buffer {
    const len = this.u32()
    this.need(len)
    const out = this.buf.subarray(this.pos, this.pos + len)
    this.pos += len
    return out
  }
  atEnd(): boolean {
    return this.pos === this.buf.length
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw invalid(this.label, 'truncated OpenSSH key data')
  }
}

function sshString(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(4 + bytes.byteLength)
  out.writeUInt32BE(bytes.byteLength, 0)
  out.set(bytes, 4)
  return out
}

function describeSshType(type: string): string {
  if (type === 'ssh-rsa') return 'an rsa'
  if (type === 'ssh-dss') return 'a dsa'
  if (type.startsWith('ecdsa-')) return 'an ecdsa'
  if (type.startsWith('sk-')) return `a security-key (${type})`
  return withArticle(type)
}

function withArticle(word: string): string {
  return /^[aefhilmnorsx]/i.test(word) ? `an ${word}` : `a ${word}`
}

function invalid(label: string, reason: string, cause?: unknown): AuthError {
  return new AuthError('key_file_invalid', `${label}: ${reason}`, { path: label, ...(cause !== undefined ? { cause } : {}) })
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined
}

function fileError(path: string, err: unknown): AuthError {
  const code = errnoCode(err)
  const reason =
    code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'ENOTDIR'
            ? 'a parent of this path is not a directory'
            : code === 'ELOOP'
              ? 'is a symbolic link; refusing to write through it'
              : code === 'ENOSPC'
                ? 'no space left on device'
                : err instanceof Error
                  ? err.message
                  : String(err)
  return new AuthError('key_file_invalid', `${path}: ${reason}`, { path, cause: err })
}

/**
 * Reads a line from the terminal without echo. Rejects when stdin is not a TTY or the
 * user presses Ctrl-C / Ctrl-D.
 */
export async function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin
  if (!stdin.isTTY) throw new AuthError('key_file_invalid', `cannot prompt for a passphrase: stdin is not a terminal; set ${PASSPHRASE_ENV}`)
  process.stderr.write(prompt)
  const wasRaw = stdin.isRaw
  stdin.setRawMode(true)
  stdin.resume()
  stdin.setEncoding('utf8')
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = ''
      const onData = (chunk: string): void => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData)
            resolve(value)
            return
          }
          if (ch === '\u0003' || ch === '\u0004') {
            stdin.off('data', onData)
            reject(new AuthError('key_file_invalid', 'passphrase entry cancelled'))
            return
          }
          if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1)
          else value += ch
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode(wasRaw)
    stdin.pause()
    process.stderr.write('\n')
  }
}
