/**
 * Compiles a {@link PolicyDocument} into an {@link Authorizer} whose decision costs a hash lookup
 * once warm.
 *
 * - Rules are indexed by their most selective match key (fingerprint, else role, else org); a
 *   caller's applicable rules are the union of three index lookups and the unkeyed rules, checked
 *   once per caller identity, not per call.
 * - The applicable rules' globs merge into one allow and one deny {@link NameMatcher} per kind,
 *   so a cache miss runs at most two matchers, however many rules there are.
 * - Decisions are cached per (caller identity, kind, name). The identity is the allowlist entry's
 *   metadata object (replaced on every allowlist reload) plus fingerprint and scopes, so an
 *   allowlist edit is seen at once; a policy edit compiles a new Authorizer with empty caches.
 *
 * Semantics: a matching `deny` beats every `allow`; else a matching `allow` allows; else `default`
 * (deny unless the policy says `default: allow`). The deciding rule is the first in file order.
 * @module
 */
import { compileGlobs, type NameMatcher } from './glob.js'
import type { MatchSpec, PolicyDocument, RuleSpec } from './policy-schema.js'
import type { AuthzDecision, AuthzKind, AuthzRequest, AuthzSubject, Authorizer } from './types.js'

const KINDS = ['tool', 'resource', 'prompt'] as const
const FIELD: Record<AuthzKind, 'tools' | 'resources' | 'prompts'> = { tool: 'tools', resource: 'resources', prompt: 'prompts' }
/** Cached decisions per caller view, and views per metadata object, before the cache starts over. */
const MAX_DECISIONS_PER_VIEW = 10_000
const MAX_VIEWS_PER_ENTRY = 64

type PerKind = Record<AuthzKind, NameMatcher>

interface CompiledRule {
  readonly index: number
  readonly label: string
  readonly matches: (s: AuthzSubject) => boolean
  readonly allow: PerKind
  readonly deny: PerKind
  readonly globs: Record<'allow' | 'deny', Record<AuthzKind, readonly string[]>>
}

/** What one caller identity may do: its applicable rules, merged matchers and decision cache. */
interface CallerView {
  readonly rules: readonly CompiledRule[]
  readonly allow: PerKind
  readonly deny: PerKind
  /** Decisions taken, per kind, by name. */
  readonly decisions: Record<AuthzKind, Map<string, AuthzDecision>>
}

export interface CompiledPolicy extends Authorizer {
  readonly default: 'allow' | 'deny'
  readonly ruleCount: number
  readonly auditAllowed: boolean
}

function list(v: string | readonly string[] | undefined): readonly string[] | undefined {
  return v === undefined ? undefined : typeof v === 'string' ? [v] : v
}

function metadataHolds(actual: unknown, wanted: string | number | boolean | Array<string | number | boolean>): boolean {
  const options = Array.isArray(wanted) ? wanted : [wanted]
  if (Array.isArray(actual)) return actual.some((a) => options.includes(a as never))
  return options.includes(actual as never)
}

function compileMatch(m: MatchSpec | undefined): (s: AuthzSubject) => boolean {
  if (m === undefined) return () => true
  const roles = list(m.role)
  const orgs = list(m.org)
  const fps = list(m.fingerprint)
  const scopes = m.scopes ?? []
  const md = Object.entries(m.metadata ?? {})
  return (s) =>
    (roles === undefined || (s.role !== undefined && roles.includes(s.role))) &&
    (orgs === undefined || (s.org !== undefined && orgs.includes(s.org))) &&
    (fps === undefined || fps.includes(s.fingerprint)) &&
    scopes.every((x) => s.scopes.includes(x)) &&
    md.every(([k, v]) => Object.hasOwn(s.metadata, k) && metadataHolds(s.metadata[k], v))
}

function perKind(p: RuleSpec['allow']): PerKind {
  const out = {} as Record<AuthzKind, NameMatcher>
  for (const k of KINDS) out[k] = compileGlobs(p?.[FIELD[k]] ?? [])
  return out
}

/** One matcher per kind over all the globs of `rules` on one side. */
function mergedPerKind(rules: readonly CompiledRule[], side: 'allow' | 'deny'): PerKind {
  const out = {} as Record<AuthzKind, NameMatcher>
  for (const k of KINDS) out[k] = compileGlobs(rules.flatMap((r) => r.globs[side][k]))
  return out
}

function compileRule(spec: RuleSpec, index: number): CompiledRule {
  const globsOf = (p: RuleSpec['allow']): Record<AuthzKind, readonly string[]> => ({ tool: p?.tools ?? [], resource: p?.resources ?? [], prompt: p?.prompts ?? [] })
  return {
    index,
    label: spec.name ?? `rules[${index}]`,
    matches: compileMatch(spec.match),
    allow: perKind(spec.allow),
    deny: perKind(spec.deny),
    globs: { allow: globsOf(spec.allow), deny: globsOf(spec.deny) },
  }
}

function addTo(index: Map<string, number[]>, keys: readonly string[], i: number): void {
  for (const k of keys) {
    const at = index.get(k)
    if (at === undefined) index.set(k, [i])
    else at.push(i)
  }
}

/** Compiles a validated policy. */
export function compilePolicy(doc: PolicyDocument): CompiledPolicy {
  const rules = (doc.rules ?? []).map(compileRule)
  const byFingerprint = new Map<string, number[]>()
  const byRole = new Map<string, number[]>()
  const byOrg = new Map<string, number[]>()
  const unkeyed: number[] = []
  for (const r of rules) {
    const m = doc.rules![r.index]!.match
    const fps = list(m?.fingerprint)
    const roles = list(m?.role)
    const orgs = list(m?.org)
    if (fps !== undefined) addTo(byFingerprint, fps, r.index)
    else if (roles !== undefined) addTo(byRole, roles, r.index)
    else if (orgs !== undefined) addTo(byOrg, orgs, r.index)
    else unkeyed.push(r.index)
  }
  const fallback: AuthzDecision = Object.freeze({ allowed: (doc.default ?? 'deny') === 'allow', rule: 'default' })
  const views = new WeakMap<object, Map<string, CallerView>>()

  function buildView(s: AuthzSubject): CallerView {
    const candidates = new Set<number>(unkeyed)
    for (const i of byFingerprint.get(s.fingerprint) ?? []) candidates.add(i)
    if (s.role !== undefined) for (const i of byRole.get(s.role) ?? []) candidates.add(i)
    if (s.org !== undefined) for (const i of byOrg.get(s.org) ?? []) candidates.add(i)
    const applicable = [...candidates].sort((a, b) => a - b).map((i) => rules[i]!).filter((r) => r.matches(s))
    return { rules: applicable, allow: mergedPerKind(applicable, 'allow'), deny: mergedPerKind(applicable, 'deny'), decisions: { tool: new Map(), resource: new Map(), prompt: new Map() } }
  }

  /** The view of the last identity seen with this metadata object (the common case: one key per entry). */
  interface Remembered {
    fingerprint: string
    scopes: readonly string[]
    view: CallerView
  }
  const last = new WeakMap<object, Remembered>()

  function sameScopes(a: readonly string[], b: readonly string[]): boolean {
    if (a === b) return true
    if (a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
    return true
  }

  function viewOf(s: AuthzSubject): CallerView {
    const hit = last.get(s.metadata)
    if (hit !== undefined && hit.fingerprint === s.fingerprint && sameScopes(hit.scopes, s.scopes)) return hit.view
    let byKey = views.get(s.metadata)
    if (byKey === undefined) views.set(s.metadata, (byKey = new Map()))
    const key = s.scopes.length === 0 ? s.fingerprint : `${s.fingerprint}\n${s.scopes.join('\n')}`
    let view = byKey.get(key)
    if (view === undefined) {
      if (byKey.size >= MAX_VIEWS_PER_ENTRY) byKey.clear()
      view = buildView(s)
      byKey.set(key, view)
    }
    last.set(s.metadata, { fingerprint: s.fingerprint, scopes: [...s.scopes], view })
    return view
  }

  function decideIn(view: CallerView, kind: AuthzKind, name: string): AuthzDecision {
    if (view.deny[kind].test(name)) {
      const r = view.rules.find((x) => x.deny[kind].test(name))!
      return { allowed: false, rule: r.label }
    }
    if (view.allow[kind].test(name)) {
      const r = view.rules.find((x) => x.allow[kind].test(name))!
      return { allowed: true, rule: r.label }
    }
    return fallback
  }

  return {
    default: fallback.allowed ? 'allow' : 'deny',
    ruleCount: rules.length,
    auditAllowed: doc.audit_allowed ?? false,
    decide(subject: AuthzSubject, request: AuthzRequest): AuthzDecision {
      const view = viewOf(subject)
      const decisions = view.decisions[request.kind]
      let d = decisions.get(request.name)
      if (d === undefined) {
        if (decisions.size >= MAX_DECISIONS_PER_VIEW) decisions.clear()
        d = decideIn(view, request.kind, request.name)
        decisions.set(request.name, d)
      }
      return d
    },
  }
}
