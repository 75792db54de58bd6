/**
 * Counts kept as plain numbers on the hot path and handed to a prom-client Counter when it is
 * collected (at scrape time): a request pays an integer increment, not a label lookup.
 * @module
 */
import type { Counter } from 'prom-client'

export interface DeferredCounter<L extends string> {
  /** One count for these label values (the values must come from a bounded set). */
  add(...values: string[]): void
  /** A cell for fixed label values: `cell.n++` is the cheapest way to count. */
  cell(...values: string[]): { n: number }
  /** Used by the counter's `collect()`: moves what was counted since the last call into it. */
  flush(counter: Counter<L>): void
}

export function createDeferredCounter<L extends string>(): DeferredCounter<L> {
  const cells = new Map<string, { values: string[]; n: number; reported: number }>()
  const cell = (values: string[]): { values: string[]; n: number; reported: number } => {
    const key = values.join('\u0000')
    let c = cells.get(key)
    if (c === undefined) {
      c = { values, n: 0, reported: 0 }
      cells.set(key, c)
    }
    return c
  }
  return {
    add: (...values) => void cell(values).n++,
    cell: (...values) => cell(values),
    flush(counter) {
      for (const c of cells.values()) {
        const child = counter.labels(...c.values)
        child.inc(c.n - c.reported)
        c.reported = c.n
      }
    },
  }
}
