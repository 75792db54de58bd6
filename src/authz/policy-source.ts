/**
 * Where a policy comes from and how it stays current: inline under `authorization:` in the
 * server/gateway config file, or in the file `authorization.policy_file` names (relative to the
 * config's folder). Either file is watched (fs.watch on its folder plus a stat poll) and a changed
 * file is re-read, validated and compiled; a broken edit is refused with the parse error and its
 * path while the last good policy keeps deciding.
 * @module
 */
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { loadYaml } from '../internal/load-on-use.js'
import { ConfigError } from '../errors.js'
import { fileSignature, reloadOnChange } from '../internal/file-watch.js'
import { compilePolicy, type CompiledPolicy } from './compile-policy.js'
import { authorizationSectionSchema, formatPolicyIssues, validatePolicyObject } from './policy-schema.js'
import type { AuthzDecision, AuthzRequest, AuthzSubject, Authorizer } from './types.js'

/** A policy's file and, for a policy inline in a config, the key it sits under. */
export interface PolicySource {
  readonly file: string
  /** `authorization` when the policy is inline in a config file; undefined for a policy file. */
  readonly section?: string | undefined
}

function policyError(file: string, problems: readonly string[], cause?: unknown): ConfigError {
  return new ConfigError(`${file}: invalid policy:\n  ${problems.join('\n  ')}`, problems.map((p) => `${file}: ${p}`), { path: file, ...(cause === undefined ? {} : { cause }) })
}

function parseYaml(text: string, file: string): unknown {
  const doc = loadYaml().parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!
    const pos = e.linePos?.[0]
    const first = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')
    throw policyError(file, [pos ? `line ${pos.line}, column ${pos.col}: invalid YAML: ${first}` : `invalid YAML: ${first}`])
  }
  try {
    return doc.toJS({ maxAliasCount: 100 })
  } catch (err) {
    throw policyError(file, [`invalid YAML: ${err instanceof Error ? err.message : String(err)}`])
  }
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw policyError(file, [code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? 'error'})`], err)
  }
}

/**
 * Where the policy of a config file lives, or undefined when the config has no `authorization:`
 * section (then nothing is authorized beyond authentication, as before). Throws ConfigError for an
 * invalid section.
 */
export async function policySourceOf(configFile: string): Promise<PolicySource | undefined> {
  const raw = parseYaml(await readText(configFile), configFile) as Record<string, unknown> | null
  const section = raw !== null && typeof raw === 'object' ? raw.authorization : undefined
  if (section === undefined) return undefined
  const r = authorizationSectionSchema.safeParse(section ?? {})
  if (!r.success) throw policyError(configFile, formatPolicyIssues(r.error.issues, ['authorization']))
  if (r.data.policy_file !== undefined) return { file: resolve(dirname(resolve(configFile)), r.data.policy_file) }
  return { file: resolve(configFile), section: 'authorization' }
}

/** Reads, validates and compiles the policy at `source`. Throws ConfigError naming file and path. */
const EMPTY_POLICY_FILE =
  'the file is empty: a policy needs at least `default: deny` (or `default: allow`); a file caught mid-save is read again when the save completes'

const EMPTY_CONFIG_FILE = 'the file is empty; a file caught mid-save is read again when the save completes'

export async function loadPolicy(source: PolicySource): Promise<CompiledPolicy> {
  const raw = parseYaml(await readText(source.file), source.file)
  // An empty file is never taken as a policy: an editor that truncates and then writes is seen empty
  // for a moment, and a reload that applied it would make that emptiness the last good policy.
  if (raw === null || raw === undefined) throw policyError(source.file, [source.section === undefined ? EMPTY_POLICY_FILE : EMPTY_CONFIG_FILE])
  let doc: unknown = raw
  const prefix: string[] = []
  if (source.section !== undefined) {
    doc = raw !== null && typeof raw === 'object' ? (raw as Record<string, unknown>)[source.section] : undefined
    prefix.push(source.section)
    // Like an empty file: a config caught mid-save may lack the section for a moment, and turning
    // authorization off is what a restart without the section does, not a reload.
    if (doc === undefined) throw policyError(source.file, [`${source.section}: the section is gone; removing it needs a restart (a file caught mid-save is read again when the save completes)`])
    if (doc !== null && typeof doc === 'object' && 'policy_file' in doc) {
      throw policyError(source.file, [`${source.section}.policy_file: moving an inline policy to a policy file needs a restart`])
    }
  }
  const r = validatePolicyObject(doc, prefix)
  if (!r.ok) throw policyError(source.file, r.problems)
  return compilePolicy(r.policy)
}

export interface WatchPolicyOptions {
  /** A new policy is in force. */
  onReload?: (policy: CompiledPolicy) => void
  /** A changed file was refused; the last good policy stays. */
  onError?: (err: ConfigError) => void
  /** Stat-poll interval in ms (fs.watch may miss edits on some file systems), default 250. */
  pollIntervalMs?: number
}

/** An {@link Authorizer} that always asks the current policy, swapped in on every good edit. */
export interface PolicyHolder extends Authorizer {
  readonly source: PolicySource
  readonly current: CompiledPolicy
  /** Checks the file now and reloads if it changed. */
  check(): Promise<void>
  close(): void
}

/** Loads the policy at `source` (throws if it is invalid) and keeps it current. */
export async function watchPolicy(source: PolicySource, options: WatchPolicyOptions = {}): Promise<PolicyHolder> {
  const initialSignature = await fileSignature(source.file)
  let current = await loadPolicy(source)
  const watcher = reloadOnChange(source.file, {
    initialSignature,
    pollIntervalMs: options.pollIntervalMs ?? 250,
    debounceMs: 20,
    load: () => loadPolicy(source),
    apply(next) {
      current = next
      options.onReload?.(next)
    },
    refused: (err) => options.onError?.(err instanceof ConfigError ? err : policyError(source.file, [String(err)], err)),
  })

  return {
    source,
    get current() {
      return current
    },
    get auditAllowed() {
      return current.auditAllowed
    },
    decide: (subject: AuthzSubject, request: AuthzRequest): AuthzDecision => current.decide(subject, request),
    check: watcher.check,
    close: watcher.close,
  }
}
