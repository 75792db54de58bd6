import { randomBytes } from 'node:crypto'

/** Milliseconds since the epoch. Injected everywhere time matters, so tests can freeze it. */
export type Clock = () => number
export const systemClock: Clock = () => Date.now()

/** Source of random bytes. Injected so test vectors are reproducible. */
export type RandomSource = (size: number) => Buffer

const POOL_SIZE = 4096
const POOLED_MAX = 256
let pool: Buffer = Buffer.alloc(0)
let poolOffset = 0

/**
 * CSPRNG bytes. Small requests are sliced from a 4 KiB block of `randomBytes` (one OpenSSL call per
 * ~60 handshakes instead of ~5 per handshake); every byte is handed out once and never reused. The
 * returned buffer may be a view into that block: callers own it (and may zero it) but must not
 * assume `byteOffset === 0`.
 */
export const systemRandom: RandomSource = (size) => {
  if (!Number.isInteger(size) || size < 1 || size > POOLED_MAX) return randomBytes(size)
  if (poolOffset + size > pool.length) {
    pool = randomBytes(POOL_SIZE)
    poolOffset = 0
  }
  const out = pool.subarray(poolOffset, poolOffset + size)
  poolOffset += size
  return out
}

/** RFC 3339 UTC with milliseconds. */
export function formatTimestamp(ms: number): string {
  // The "YYYY-MM-DDTHH:MM:SS." prefix changes once a second: two cached prefixes (now and the
  // challenge expiry a TTL later) make this a string concatenation. Same output as toISOString.
  if (!Number.isSafeInteger(ms) || ms < 0 || ms > MAX_4_DIGIT_YEAR_MS) return new Date(ms).toISOString()
  const sec = Math.floor(ms / 1000)
  const r = ms - sec * 1000
  let prefix: string
  if (sec === secA) prefix = prefixA
  else if (sec === secB) prefix = prefixB
  else {
    prefix = new Date(sec * 1000).toISOString().slice(0, 20)
    secB = secA
    prefixB = prefixA
    secA = sec
    prefixA = prefix
  }
  return prefix + (r < 10 ? '00' : r < 100 ? '0' : '') + r + 'Z'
}

const MAX_4_DIGIT_YEAR_MS = 253402300799999 // 9999-12-31T23:59:59.999Z
let secA = -1
let prefixA = ''
let secB = -1
let prefixB = ''

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const

/** Decimal value of `text[from, to)`, or -1 when any character is not an ASCII digit. */
function digits(text: string, from: number, to: number): number {
  let v = 0
  for (let i = from; i < to; i++) {
    const d = text.charCodeAt(i) - 48
    if (d < 0 || d > 9) return -1
    v = v * 10 + d
  }
  return v
}

/** Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y
  const era = Math.floor(yy / 400)
  const yoe = yy - era * 400
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
}

/**
 * Parses exactly `YYYY-MM-DDTHH:MM:SS.mmmZ` (what {@link formatTimestamp} writes for years 0000–9999);
 * anything else, including impossible dates such as 02-30 or hour 24, is undefined.
 */
export function parseTimestamp(text: string): number | undefined {
  if (typeof text !== 'string' || text.length !== 24) return undefined
  if (
    text.charCodeAt(4) !== 45 || // -
    text.charCodeAt(7) !== 45 ||
    text.charCodeAt(10) !== 84 || // T
    text.charCodeAt(13) !== 58 || // :
    text.charCodeAt(16) !== 58 ||
    text.charCodeAt(19) !== 46 || // .
    text.charCodeAt(23) !== 90 // Z
  ) {
    return undefined
  }
  const year = digits(text, 0, 4)
  const month = digits(text, 5, 7)
  const day = digits(text, 8, 10)
  const hour = digits(text, 11, 13)
  const minute = digits(text, 14, 16)
  const second = digits(text, 17, 19)
  const milli = digits(text, 20, 23)
  if (year < 0 || milli < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) {
    return undefined
  }
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  if (day > (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!)) return undefined
  return ((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute) * 60000 + second * 1000 + milli
}
