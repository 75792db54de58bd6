/**
 * A histogram for the hot path: observing is a few comparisons and additions on plain numbers
 * (prom-client's own Histogram hashes its labels on every observation, about a microsecond).
 * It registers with a prom-client Registry like any metric and is rendered by prom-client: the
 * registry asks it for its values at scrape time (`get` / `getForPromString`, the shape
 * prom-client's own metrics return), cumulative per bucket, with `_sum` and `_count`.
 * @module
 */
import type { Registry } from 'prom-client'

export interface HistogramCell {
  observe(value: number): void
}

interface Cells extends HistogramCell {
  labels: Record<string, string>
  counts: Float64Array
  sum: number
  count: number
}

interface MetricValue {
  metricName: string
  labels: Record<string, string | number>
  value: number
}

export interface DeferredHistogramOptions<L extends string> {
  name: string
  help: string
  /** Upper bounds, ascending (a `+Inf` bucket is added). */
  buckets: readonly number[]
  labelNames?: readonly L[]
  registers: readonly Registry[]
}

export class DeferredHistogram<L extends string = string> {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #bounds: Float64Array
  readonly #labelNames: readonly L[]
  readonly #cells = new Map<string, Cells>()

  constructor(o: DeferredHistogramOptions<L>) {
    if (!o.buckets.every((b, i) => Number.isFinite(b) && (i === 0 || b > o.buckets[i - 1]!))) throw new RangeError('buckets must be finite and ascending')
    this.name = o.name
    this.help = o.help
    this.#bounds = Float64Array.from(o.buckets)
    this.#labelNames = o.labelNames ?? []
    for (const r of o.registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0])
  }

  /** The cell for these label values (one per label name, in order; from a bounded set). */
  labels(...values: string[]): HistogramCell {
    if (values.length !== this.#labelNames.length) throw new RangeError(`${this.name}: expected ${this.#labelNames.length} label values`)
    const key = values.join('\u0000')
    let cell = this.#cells.get(key)
    if (cell === undefined) {
      const bounds = this.#bounds
      const labels: Record<string, string> = {}
      this.#labelNames.forEach((n, i) => (labels[n] = values[i]!))
      const c: Cells = {
        labels,
        counts: new Float64Array(bounds.length + 1),
        sum: 0,
        count: 0,
        observe(value: number) {
          let i = 0
          while (i < bounds.length && value > bounds[i]!) i++
          c.counts[i]!++
          c.sum += value
          c.count++
        },
      }
      cell = c
      this.#cells.set(key, cell)
    }
    return cell
  }

  observe(value: number): void {
    this.labels().observe(value)
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    return this.getForPromString()
  }

  getForPromString(): { name: string; help: string; type: string; aggregator: string; values: MetricValue[] } {
    const values: MetricValue[] = []
    for (const cell of this.#cells.values()) {
      let cumulative = 0
      this.#bounds.forEach((bound, i) => {
        cumulative += cell.counts[i]!
        values.push({ metricName: `${this.name}_bucket`, labels: { ...cell.labels, le: bound }, value: cumulative })
      })
      values.push({ metricName: `${this.name}_bucket`, labels: { ...cell.labels, le: '+Inf' }, value: cell.count })
      values.push({ metricName: `${this.name}_sum`, labels: cell.labels, value: cell.sum })
      values.push({ metricName: `${this.name}_count`, labels: cell.labels, value: cell.count })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset(): void {
    for (const cell of this.#cells.values()) {
      cell.counts.fill(0)
      cell.sum = 0
      cell.count = 0
    }
  }
}
