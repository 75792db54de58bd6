/**
 * Authorization decision cost with a 1,000-rule policy (issue 13: under 2 µs per call).
 *
 *   node --import tsx bench/authz-decision.ts [--quick]
 *
 * Prints one JSON line: µs per decision, median of runs, for
 * - `warm`: a caller deciding names it decided before (the steady state of a session);
 * - `miss`: a known caller, a name never seen (merged matchers, no per-rule scan);
 * - `new_caller`: the first decision of a caller identity (its applicable rules are found through
 *   the role/org/fingerprint index, then its matchers are merged);
 * - `linear_scan`: for comparison, the naive evaluation: every rule's match and globs per call;
 * plus the compile time of the policy (ms).
 * @module
 */
import { compilePolicy } from '../src/authz/compile-policy.js'
import { globSource } from '../src/authz/glob.js'
import { validatePolicyObject, type RuleSpec } from '../src/authz/policy-schema.js'
import type { AuthzSubject } from '../src/authz/types.js'

const quick = process.argv.includes('--quick')
const RUNS = quick ? 3 : 7
const RULES = 1000

function policyDoc(): unknown {
  const rules: RuleSpec[] = []
  for (let i = 0; i < 700; i++) rules.push({ name: `role-${i}`, match: { role: `r${i % 350}` }, allow: { tools: [`tool_${i}_*`, `exact_${i}`, `search_${i}_*`], resources: [`file:///r${i}/*`], prompts: [`p${i}`] } })
  for (let i = 0; i < 200; i++) rules.push({ name: `org-${i}`, match: { org: `o${i}` }, deny: { tools: [`tool_${i}_delete_*`, 'drop_*'] } })
  for (let i = 0; i < 100; i++) rules.push({ name: `team-${i}`, match: { metadata: { team: `t${i}` }, scopes: [`s${i % 10}`] }, allow: { tools: [`team_${i}_*`] } })
  return { default: 'deny', rules }
}

function subject(i: number): AuthzSubject {
  return { fingerprint: i.toString(16).padStart(64, '0'), role: `r${i % 350}`, org: `o${i % 200}`, scopes: [`s${i % 10}`, `role:r${i % 350}`], metadata: Object.freeze({ role: `r${i % 350}`, org: `o${i % 200}`, team: `t${i % 100}` }) }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]!
}

function perCall(n: number, fn: (i: number) => unknown): number {
  let sink = 0
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < n; i++) if (fn(i)) sink++
  const ns = Number(process.hrtime.bigint() - t0)
  if (sink < 0) console.log(sink)
  return ns / n / 1000
}

/** The naive evaluator this design avoids: every rule, every call. */
function linearEvaluator(doc: { rules: RuleSpec[] }): (s: AuthzSubject, name: string) => boolean {
  const rules = doc.rules.map((r) => ({
    r,
    allow: (r.allow?.tools ?? []).map((g) => new RegExp(`^${globSource(g)}$`)),
    deny: (r.deny?.tools ?? []).map((g) => new RegExp(`^${globSource(g)}$`)),
  }))
  const matches = (r: RuleSpec, s: AuthzSubject): boolean =>
    (r.match?.role === undefined || r.match.role === s.role) &&
    (r.match?.org === undefined || r.match.org === s.org) &&
    (r.match?.scopes ?? []).every((x) => s.scopes.includes(x)) &&
    Object.entries(r.match?.metadata ?? {}).every(([k, v]) => s.metadata[k] === v)
  return (s, name) => {
    let allowed = false
    for (const x of rules) {
      if (!matches(x.r, s)) continue
      if (x.deny.some((re) => re.test(name))) return false
      if (!allowed && x.allow.some((re) => re.test(name))) allowed = true
    }
    return allowed
  }
}

function main(): void {
  const v = validatePolicyObject(policyDoc())
  if (!v.ok) throw new Error(v.problems.join('\n'))
  const callers = Array.from({ length: 64 }, (_, i) => subject(i))
  const names = Array.from({ length: 64 }, (_, i) => (i % 4 === 0 ? `tool_${i}_read` : i % 4 === 1 ? `exact_${i}` : i % 4 === 2 ? `drop_${i}` : `team_${i}_x`))
  const out: Record<string, number[]> = { warm: [], miss: [], new_caller: [], linear_scan: [], compile_ms: [] }
  const linear = linearEvaluator(v.policy as { rules: RuleSpec[] })
  for (let run = 0; run < RUNS; run++) {
    const t0 = process.hrtime.bigint()
    const policy = compilePolicy(v.policy)
    out.compile_ms!.push(Number(process.hrtime.bigint() - t0) / 1e6)
    // warm up every (caller, name) pair, then time the steady state
    for (const c of callers) for (const n of names) policy.decide(c, { kind: 'tool', name: n })
    const n = quick ? 200_000 : 1_000_000
    out.warm!.push(perCall(n, (i) => policy.decide(callers[i & 63]!, { kind: 'tool', name: names[(i >> 6) & 63]! }).allowed))
    // Names made beforehand (a request's names arrive as parsed strings), fewer than the cache bound.
    const freshNames = Array.from({ length: quick ? 5_000 : 9_000 }, (_, i) => `tool_${i & 63}_new_${run}_${i}`)
    out.miss!.push(perCall(freshNames.length, (i) => policy.decide(callers[0]!, { kind: 'tool', name: freshNames[i]! }).allowed))
    const fresh = Array.from({ length: quick ? 500 : 2000 }, (_, i) => subject(1000 + i))
    out.new_caller!.push(perCall(fresh.length, (i) => policy.decide(fresh[i]!, { kind: 'tool', name: 'exact_1' }).allowed))
    out.linear_scan!.push(perCall(quick ? 2000 : 10_000, (i) => linear(callers[i & 63]!, names[(i >> 6) & 63]!)))
  }
  const result: Record<string, unknown> = { rules: RULES }
  for (const [k, vals] of Object.entries(out)) result[k] = { median: median(vals), min: Math.min(...vals), max: Math.max(...vals), runs: vals }
  console.log(JSON.stringify(result))
}

main()
