/**
 * The policy a server/gateway config file names, loaded and watched, with its reloads and refused
 * edits reported as audit events (`authz.reload`, `authz.reload_failed`).
 * @module
 */
import type { AuditSink } from '../transport/auth-service.js'
import { policySourceOf, watchPolicy, type PolicyHolder } from './policy-source.js'

/**
 * Loads the policy of `configFile` (inline `authorization:` or its `policy_file`) and keeps it
 * current; undefined when the config has no `authorization:` section. Throws ConfigError when the
 * policy is invalid at start. Close the holder when done.
 */
export async function startPolicyFromConfig(configFile: string, events?: AuditSink, options: { pollIntervalMs?: number } = {}): Promise<PolicyHolder | undefined> {
  const source = await policySourceOf(configFile)
  if (source === undefined) return undefined
  return watchPolicy(source, {
    ...(options.pollIntervalMs === undefined ? {} : { pollIntervalMs: options.pollIntervalMs }),
    onReload: (p) => events?.log('authz.reload', { path: source.file, rules: p.ruleCount, default: p.default }),
    onError: (err) => events?.log('authz.reload_failed', { path: source.file, reason: `${err.problems.join('; ')}; keeping the last good policy` }, 'ERROR'),
  })
}
