/**
 * The test reporter of `make test`: Node's spec reporter (one line per test, every failure in full
 * at the end, then Node's closing `ℹ tests/pass/fail …` lines), followed by one plain line
 * `N passed, N failed` (cancelled tests, e.g. timeouts, count as failed) for CI and for people.
 *
 *   node --test --test-reporter=./scripts/test-reporter.mjs test/…
 */
import { once } from 'node:events'
import { spec } from 'node:test/reporters'

/** The counts Node reports in its own closing diagnostics (`pass 445`, `fail 0`, `cancelled 0`). */
const CLOSING_COUNT = /^(pass|fail|cancelled) (\d+)$/

export default async function* specWithSummary(source) {
  const counts = { pass: 0, fail: 0, cancelled: 0 }
  const chunks = []
  const formatter = new spec()
  formatter.on('data', (chunk) => chunks.push(chunk))
  for await (const event of source) {
    if (event.type === 'test:diagnostic' && event.data.nesting === 0) {
      const m = CLOSING_COUNT.exec(event.data.message)
      if (m) counts[m[1]] = Number(m[2])
    }
    formatter.write(event)
    while (chunks.length > 0) yield chunks.shift()
  }
  formatter.end()
  await once(formatter, 'end')
  while (chunks.length > 0) yield chunks.shift()
  yield `\n${counts.pass} passed, ${counts.fail + counts.cancelled} failed\n`
}
