/**
 * One cleanup list per test file (node:test runs each file in its own process): what a helper or a
 * test starts is registered here and undone after the file's last test, newest first.
 */
import { after } from 'node:test'

const cleanups: Array<() => unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) {
    try {
      await c()
    } catch {
      // best effort: the next cleanup still runs
    }
  }
})

/** Runs `fn` after the file's tests (newest first). */
export function onCleanup(fn: () => unknown): void {
  cleanups.push(fn)
}
