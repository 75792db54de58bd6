/**
 * A client's pinned server fingerprint that follows a verified rotation (server-key-rotation.ts):
 * the new pin is written where it is kept first (`persist`, e.g. the client config file), and the
 * pin in memory moves only once that succeeded, so a failed write keeps the old pin everywhere.
 * Every change, ignored update and failed write is logged.
 * @module
 */
import type { PinRotation } from './server-key-rotation.js'

export interface PinChange {
  from: string
  to: string
  toPublicKeyRaw: Buffer
}

export interface PinnedServerKeyOptions {
  /** Records the new pin (e.g. rewrites the client config); the pin moves only when this resolves. Default: memory only. */
  persist?: (change: PinChange) => Promise<void>
  /** Where re-pins, ignored updates and failed writes are reported (default: a line on stderr). */
  log?: (message: string, level: 'INFO' | 'WARN' | 'ERROR') => void
}

export interface PinnedServerKey extends PinRotation {
  /** Resolves once every re-pin started so far has been written (or has failed and been logged). */
  settled(): Promise<void>
}

function stderrLog(message: string, level: string): void {
  process.stderr.write(`mcp-pki ${level}: ${message}\n`)
}

export function createPinnedServerKey(initial: string, o: PinnedServerKeyOptions = {}): PinnedServerKey {
  let pin = initial.toLowerCase()
  let writing: string | undefined
  let chain: Promise<void> = Promise.resolve()
  const log = o.log ?? stderrLog
  return {
    pinned: () => pin,
    ignored(reason) {
      log(`ignored a server key update: ${reason}; the pin stays ${pin}`, 'WARN')
    },
    advance(change) {
      if (change.from !== pin || writing === change.to) return // already moved, or being written
      writing = change.to
      const persist = o.persist
      chain = chain.then(async () => {
        try {
          if (persist !== undefined) await persist(change)
          pin = change.to
          log(`server key rotated: pin ${change.from} → ${change.to} (the server proved both keys in this handshake)`, 'INFO')
        } catch (err) {
          log(`could not record the rotated server key ${change.to}: ${(err as Error).message}; the pin stays ${change.from}`, 'ERROR')
        } finally {
          writing = undefined
        }
      })
    },
    settled: () => chain,
  }
}
