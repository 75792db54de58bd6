/**
 * Name globs for policies: `*` matches any run of characters (including `/` and none at all),
 * everything else matches itself. `search_*` matches `search_web`; `file:///public/*` matches
 * `file:///public/a/b.txt`. A set of globs compiles into one {@link NameMatcher}: a Set for the
 * globs without `*` and one anchored RegExp for the rest, so a test costs one hash lookup and at
 * most one regex run, however many globs the set has.
 * @module
 */

export interface NameMatcher {
  /** True when some glob of the set matches `name`. */
  test(name: string): boolean
  /** No globs at all. */
  readonly empty: boolean
}

const NOTHING: NameMatcher = Object.freeze({ test: () => false, empty: true })
const EVERYTHING: NameMatcher = Object.freeze({ test: () => true, empty: false })

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}

/** The regex source (unanchored) for one glob. */
export function globSource(glob: string): string {
  return glob.split('*').map(escapeRegExp).join('[\\s\\S]*')
}

/** One matcher for a set of globs. */
export function compileGlobs(globs: Iterable<string>): NameMatcher {
  const exact = new Set<string>()
  const patterns = new Set<string>()
  for (const g of globs) {
    if (g === '*') return EVERYTHING
    if (g.includes('*')) patterns.add(globSource(g))
    else exact.add(g)
  }
  if (exact.size === 0 && patterns.size === 0) return NOTHING
  const re = patterns.size === 0 ? undefined : new RegExp(`^(?:${[...patterns].join('|')})$`)
  return {
    empty: false,
    test: re === undefined ? (name) => exact.has(name) : (name) => exact.has(name) || re.test(name),
  }
}
