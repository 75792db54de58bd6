/**
 * The test reporter of `make test`: Node's spec reporter (one line per test, every failure in full
 * at the end, then Node's closing `ℹ tests/pass/fail …` lines), followed by one plain line
 * `N passed, N failed` (cancelled tests, e.g. timeouts, count as failed) for CI and for people.
 *
 *   node --test --test-reporter=./scripts/test-reporter.mjs test/…
 *
 * The suite runs as .test-tree's transpiled JavaScript (scripts/build-test-tree.mjs), whose files
 * carry inline source maps. Stack locations in .test-tree are shown as the .ts file, line and
 * column they came from, here rather than with node --enable-source-maps, which costs every test
 * process ~60 ms of CPU (8 s of the suite) to read maps it almost never needs.
 */
import { Buffer } from 'node:buffer'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { SourceMap } from 'node:module'
import { resolve } from 'node:path'
import { spec } from 'node:test/reporters'
import { fileURLToPath } from 'node:url'

/** The counts Node reports in its own closing diagnostics (`pass 445`, `fail 0`, `cancelled 0`). */
const CLOSING_COUNT = /^(pass|fail|cancelled) (\d+)$/
/**
 * A location in a transpiled file: a path inside .test-tree (absolute, a file: URL, or relative
 * to the working directory as in Node's "test at …" lines), then line and column.
 */
const TREE_LOCATION = /((?:file:\/\/)?(?:\/[^\s():]*\/)?\.test-tree\/[^\s():]+\.js):(\d+):(\d+)/g
const INLINE_MAP = /\/\/# sourceMappingURL=data:application\/json;base64,([A-Za-z0-9+/=]+)\s*$/

const maps = new Map()

/** The inline source map of a .test-tree file, or null. */
function mapOf(file) {
  if (!maps.has(file)) {
    let map = null
    try {
      const m = INLINE_MAP.exec(readFileSync(file, 'utf8'))
      if (m) map = new SourceMap(JSON.parse(Buffer.from(m[1], 'base64').toString('utf8')))
    } catch {
      map = null
    }
    maps.set(file, map)
  }
  return maps.get(file)
}

/** `…/.test-tree/test/x.test.js:12:5` → `…/test/x.test.ts:10:3` (the checkout's source file). */
export function toSourceLocations(text) {
  return text.replace(TREE_LOCATION, (all, where, line, column) => {
    const file = where.startsWith('file://') ? fileURLToPath(where) : resolve(where)
    const entry = mapOf(file)?.findEntry(Number(line) - 1, Number(column) - 1)
    if (entry === undefined || entry.originalLine === undefined) return all
    const source = (where.startsWith('.test-tree/') ? where.slice('.test-tree/'.length) : file.replace('/.test-tree/', '/')).replace(/\.js$/, '.ts')
    return `${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}`
  })
}

export default async function* specWithSummary(source) {
  const counts = { pass: 0, fail: 0, cancelled: 0 }
  const chunks = []
  const formatter = new spec()
  formatter.on('data', (chunk) => chunks.push(toSourceLocations(String(chunk))))
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
