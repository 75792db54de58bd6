import { randomBytes } from 'node:crypto'

/** Milliseconds since the epoch. Injected everywhere time matters, so tests can freeze it. */
export type Clock = () => number
export const systemClock: Clock = () => Date.now()

/** Source of random bytes. Injected so test vectors are reproducible. */
export type RandomSource = (size: number) => Buffer
export const systemRandom: RandomSource = (size) => randomBytes(size)

/** RFC 3339 UTC with milliseconds. */
export function formatTimestamp(ms: number): string {
  return new Date(ms).toISOString()
}

const RFC3339_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** Parses exactly `YYYY-MM-DDTHH:MM:SS.mmmZ`; anything else is undefined. */
export function parseTimestamp(text: string): number | undefined {
  if (typeof text !== 'string' || !RFC3339_MS.test(text)) return undefined
  const ms = Date.parse(text)
  if (!Number.isFinite(ms) || new Date(ms).toISOString() !== text) return undefined
  return ms
}
