/**
 * The policy schema (zod v4). Every mapping is strict: an unknown field is an error that names its
 * path (`rules[2].allow.tool: unknown field (did you mean "tools"?)`), never a silently ignored
 * rule. The same document is accepted inline under `authorization:` in a server/gateway config or
 * as a whole policy file named by `authorization.policy_file`.
 *
 * ```yaml
 * default: deny                 # or allow; deny when left out
 * audit_allowed: false          # also audit allowed calls (denials are always audited)
 * rules:
 *   - name: readers             # optional; shown by `mcp-policy explain` and in audit events
 *     match: { role: reader }   # all given fields must hold; no match = every caller
 *     allow: { tools: ["echo", "search_*"], resources: ["file:///public/*"], prompts: ["*"] }
 *   - match: { org: contractors }
 *     deny: { tools: ["delete_*"] }   # a matching deny beats every allow
 * ```
 * @module
 */
import { z } from 'zod'
import { formatPath, suggest } from '../config/config-schema.js'

const nonEmpty = z.string({ error: 'expected a non-empty string' }).min(1, { error: 'expected a non-empty string' })
const oneOrMany = z.union([nonEmpty, z.array(nonEmpty, { error: 'expected a string or a list of strings' }).min(1)], { error: 'expected a string or a list of strings' })
const scalar = z.union([z.string(), z.number(), z.boolean()], { error: 'expected a string, number or boolean' })
const globList = z.array(nonEmpty, { error: 'expected a list of globs, e.g. ["echo", "search_*"]' })

export const matchSchema = z.strictObject(
  {
    role: oneOrMany.optional(),
    org: oneOrMany.optional(),
    fingerprint: oneOrMany
      .optional()
      .refine((v) => v === undefined || (typeof v === 'string' ? [v] : v).every((f) => /^[0-9a-f]{64}$/.test(f)), {
        error: 'expected a fingerprint: 64 lowercase hex characters (mcp-keygen --fingerprint shows it)',
      }),
    scopes: z.array(nonEmpty, { error: 'expected a list of scopes (the caller needs all of them)' }).optional(),
    metadata: z.record(z.string(), z.union([scalar, z.array(scalar)]), { error: 'expected a mapping of metadata field: value (or list of values)' }).optional(),
  },
  { error: 'expected a mapping (role, org, fingerprint, scopes, metadata)' },
)

export const permissionsSchema = z.strictObject(
  {
    tools: globList.optional(),
    resources: globList.optional(),
    prompts: globList.optional(),
  },
  { error: 'expected a mapping (tools, resources, prompts)' },
)

export const ruleSchema = z
  .strictObject(
    {
      name: nonEmpty.optional(),
      match: matchSchema.optional(),
      allow: permissionsSchema.optional(),
      deny: permissionsSchema.optional(),
    },
    { error: 'expected a rule: a mapping with match and allow and/or deny' },
  )
  .refine((r) => r.allow !== undefined || r.deny !== undefined, { error: 'a rule needs allow or deny (or both)' })

const policyShape = {
  default: z.enum(['allow', 'deny'], { error: 'expected allow or deny' }).optional(),
  audit_allowed: z.boolean({ error: 'expected true or false' }).optional(),
  rules: z.array(ruleSchema, { error: 'expected a list of rules' }).optional(),
}

function uniqueNames(doc: { rules?: Array<{ name?: string | undefined }> | undefined }, ctx: z.core.$RefinementCtx): void {
  const seen = new Map<string, number>()
  doc.rules?.forEach((r, i) => {
    if (r.name === undefined) return
    if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `rule name ${JSON.stringify(r.name)} is already used by rules[${seen.get(r.name)}]` })
    else seen.set(r.name, i)
  })
}

/** A policy file. */
export const policyFileSchema = z.strictObject(policyShape, { error: 'expected a policy: a mapping with default and rules' }).superRefine(uniqueNames)

/** The `authorization:` section of a server/gateway config: a policy inline, or `policy_file`. */
export const authorizationSectionSchema = z
  .strictObject({ ...policyShape, policy_file: nonEmpty.optional() }, { error: 'expected a mapping: default and rules, or policy_file' })
  .superRefine((doc, ctx) => {
    if (doc.policy_file !== undefined && (doc.default !== undefined || doc.rules !== undefined || doc.audit_allowed !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['policy_file'], message: 'give the policy inline (default, rules) or in policy_file, not both' })
    }
    uniqueNames(doc, ctx)
  })

export type PolicyDocument = z.output<typeof policyFileSchema>
export type AuthorizationSection = z.output<typeof authorizationSectionSchema>
export type RuleSpec = z.output<typeof ruleSchema>
export type MatchSpec = z.output<typeof matchSchema>

const KNOWN_KEYS: Record<string, readonly string[]> = {
  top: ['default', 'audit_allowed', 'rules', 'policy_file'],
  rule: ['name', 'match', 'allow', 'deny'],
  match: ['role', 'org', 'fingerprint', 'scopes', 'metadata'],
  permissions: ['tools', 'resources', 'prompts'],
}

function knownKeysAt(path: readonly PropertyKey[]): readonly string[] {
  if (path.length === 0) return KNOWN_KEYS.top!
  const last = path[path.length - 1]
  if (typeof last === 'number') return KNOWN_KEYS.rule!
  if (last === 'match') return KNOWN_KEYS.match!
  if (last === 'allow' || last === 'deny') return KNOWN_KEYS.permissions!
  return []
}

/** One line per problem, each naming its path under `prefix` (e.g. `authorization`). */
export function formatPolicyIssues(issues: readonly z.core.$ZodIssue[], prefix: readonly PropertyKey[] = []): string[] {
  const lines: string[] = []
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const hint = suggest(key, knownKeysAt(issue.path))
        lines.push(`${formatPath([...prefix, ...issue.path, key])}: unknown field${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`)
      }
      continue
    }
    const where = formatPath([...prefix, ...issue.path])
    lines.push(`${where === '' ? '(top level)' : where}: ${issue.message}`)
  }
  return [...new Set(lines)]
}

export type PolicyParseResult = { ok: true; policy: PolicyDocument } | { ok: false; problems: string[] }

/**
 * Validates a policy's parsed YAML. null (an `authorization:` section with no value) is an empty
 * policy: deny everything. loadPolicy refuses an empty file or a missing section before this.
 */
export function validatePolicyObject(raw: unknown, prefix: readonly PropertyKey[] = []): PolicyParseResult {
  const r = policyFileSchema.safeParse(raw ?? {})
  return r.success ? { ok: true, policy: r.data } : { ok: false, problems: formatPolicyIssues(r.error.issues, prefix) }
}
