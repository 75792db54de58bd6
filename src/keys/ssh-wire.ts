/**
 * The SSH wire encoding (RFC 4251 §5) as used by OpenSSH key, certificate and agent formats:
 * big-endian `uint32`/`uint64`, and `string` = uint32 length + bytes. A bounds-checked reader
 * that never reads past its buffer, and the matching writers.
 * @module
 */

/** Thrown by {@link SshReader} for data that ends early; callers map it to their own error. */
export class SshWireError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SshWireError'
  }
}

/** Reads SSH wire values from a buffer; every length is checked against what is left. */
export class SshReader {
  #pos = 0
  readonly #buf: Buffer

  constructor(buf: Uint8Array) {
    this.#buf = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  get position(): number {
    return this.#pos
  }

  get remaining(): number {
    return this.#buf.length - this.#pos
  }

  u8(): number {
    this.#need(1, 'byte')
    return this.#buf[this.#pos++]!
  }

  u32(): number {
    this.#need(4, 'uint32')
    const v = this.#buf.readUInt32BE(this.#pos)
    this.#pos += 4
    return v
  }

  u64(): bigint {
    this.#need(8, 'uint64')
    const v = this.#buf.readBigUInt64BE(this.#pos)
    this.#pos += 8
    return v
  }

  /** A `string`: a view into the buffer (copy it before keeping it past the buffer's life). */
  string(what = 'string'): Buffer {
    const len = this.u32()
    this.#need(len, what)
    const out = this.#buf.subarray(this.#pos, this.#pos + len)
    this.#pos += len
    return out
  }

  /** A `string` that must be printable ASCII/UTF-8 text without control characters. */
  text(what = 'string'): string {
    return this.string(what).toString('utf8')
  }

  atEnd(): boolean {
    return this.#pos === this.#buf.length
  }

  #need(n: number, what: string): void {
    if (n > this.#buf.length - this.#pos) {
      throw new SshWireError(`truncated: ${what} needs ${n} bytes, ${this.#buf.length - this.#pos} left`)
    }
  }
}

/** `string`: uint32 length + bytes. */
export function sshString(bytes: Uint8Array | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes
  const out = Buffer.allocUnsafe(4 + b.byteLength)
  out.writeUInt32BE(b.byteLength, 0)
  out.set(b, 4)
  return out
}

export function sshU32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4)
  out.writeUInt32BE(value, 0)
  return out
}

export function sshU64(value: bigint): Buffer {
  const out = Buffer.allocUnsafe(8)
  out.writeBigUInt64BE(value, 0)
  return out
}

/** The SSH public key blob of an ed25519 key: string "ssh-ed25519", string key. */
export function ed25519KeyBlob(publicKeyRaw: Uint8Array): Buffer {
  return Buffer.concat([sshString('ssh-ed25519'), sshString(publicKeyRaw)])
}
