#!/usr/bin/env node
/**
 * mcp-policy — check an authorization policy and explain its decisions.
 *
 *   mcp-policy validate --config server_config.yml
 *   mcp-policy explain  --config server_config.yml --fingerprint <hex> --tool delete_user
 *
 * `validate` prints the policy's size and default, or every problem with its path (exit 1).
 * `explain` looks the key up in the config's allowlist and prints `allow` or `deny` and the rule
 * that decided (exit 0 for allow, 3 for deny), like `opa eval` or `cedar authorize`.
 * @module
 */
import { Command } from 'commander'
import { loadAllowlistFile } from '../allowlist/allowlist-file.js'
import { loadConfig } from '../config/load-config.js'
import { loadPolicy, policySourceOf, type PolicySource } from '../authz/policy-source.js'
import type { CompiledPolicy } from '../authz/compile-policy.js'
import type { AuthzKind, AuthzSubject } from '../authz/types.js'
import { configureProgram, printJson, printLine, runCli, UsageError } from './shared/output.js'

/** Exit code of `explain` for a denial. */
const EXIT_DENY = 3

interface CommonOptions {
  config: string
  policy?: string
}

async function sourceOf(o: CommonOptions): Promise<PolicySource> {
  if (o.policy !== undefined) return { file: o.policy }
  const source = await policySourceOf(o.config)
  if (source === undefined) throw new UsageError(`${o.config} has no authorization: section`, 'add one (docs/authorization.md) or name a policy file with --policy')
  return source
}

async function validate(o: CommonOptions): Promise<void> {
  if (o.policy === undefined) await loadConfig(o.config) // the rest of the config must be valid too
  const source = await sourceOf(o)
  const policy = await loadPolicy(source)
  printLine(`ok: ${source.section ? `${o.config} (${source.section}:)` : source.file}: ${policy.ruleCount} rule${policy.ruleCount === 1 ? '' : 's'}, default ${policy.default}`)
}

interface ExplainOptions extends CommonOptions {
  fingerprint: string
  tool?: string
  resource?: string
  prompt?: string
  json?: boolean
}

function requestOf(o: ExplainOptions): { kind: AuthzKind; name: string } {
  const given = (['tool', 'resource', 'prompt'] as const).filter((k) => o[k] !== undefined)
  if (given.length !== 1) throw new UsageError('give exactly one of --tool, --resource and --prompt')
  return { kind: given[0]!, name: o[given[0]!]! }
}

async function subjectOf(configFile: string, fingerprint: string): Promise<AuthzSubject | undefined> {
  const config = await loadConfig(configFile)
  const list = await loadAllowlistFile(config.acl.allowlist_path)
  const entry = list.get(fingerprint.toLowerCase()) ?? (fingerprint.length >= 8 ? list.findByPrefix(fingerprint.toLowerCase()) : undefined)
  if (entry === undefined) return undefined
  const md = entry.metadata
  const scopes = Array.isArray(md.scopes) ? md.scopes.filter((s): s is string => typeof s === 'string') : []
  if (typeof md.role === 'string') scopes.push(`role:${md.role}`)
  return { fingerprint: entry.fingerprint, role: typeof md.role === 'string' ? md.role : undefined, org: typeof md.org === 'string' ? md.org : undefined, scopes, metadata: md }
}

async function explain(o: ExplainOptions): Promise<void> {
  const request = requestOf(o)
  const policy: CompiledPolicy = await loadPolicy(await sourceOf(o))
  const subject = await subjectOf(o.config, o.fingerprint)
  if (subject === undefined) {
    if (o.json) printJson({ decision: 'deny', rule: null, reason: 'not_on_allowlist', ...request })
    else printLine(`deny: ${o.fingerprint} is not on the allowlist (authentication refuses it before any policy applies)`)
    process.exitCode = EXIT_DENY
    return
  }
  const d = policy.decide(subject, request)
  const who = `${subject.fingerprint.slice(0, 16)}… (role ${subject.role ?? '-'}, org ${subject.org ?? '-'})`
  if (o.json) printJson({ decision: d.allowed ? 'allow' : 'deny', rule: d.rule, fingerprint: subject.fingerprint, ...request })
  else printLine(`${d.allowed ? 'allow' : 'deny'}: ${request.kind} ${JSON.stringify(request.name)} for ${who}: ${d.rule === 'default' ? `no rule matched, default ${policy.default}` : `rule ${JSON.stringify(d.rule)}`}`)
  if (!d.allowed) process.exitCode = EXIT_DENY
}

function buildProgram(): Command {
  const program = new Command('mcp-policy').description('Check an mcp-pki-auth authorization policy and explain its decisions (docs/authorization.md).')
  program
    .command('validate')
    .description('validate the policy of a server/gateway config (inline authorization: or its policy_file); problems name their path')
    .requiredOption('--config <file>', 'server/gateway configuration (YAML)')
    .option('--policy <file>', 'a policy file to check instead of the config’s')
    .action((o: CommonOptions) => validate(o))
  program
    .command('explain')
    .description('print allow or deny, and the deciding rule, for a key and a tool, resource or prompt (exit 0 allow, 3 deny)')
    .requiredOption('--config <file>', 'server/gateway configuration (YAML): its allowlist gives the key’s role, org, scopes and metadata')
    .requiredOption('--fingerprint <hex>', 'the client key’s fingerprint (or a unique prefix of 8+ characters)')
    .option('--tool <name>', 'a tool name (tools/call)')
    .option('--resource <uri>', 'a resource URI (resources/read, resources/subscribe)')
    .option('--prompt <name>', 'a prompt name (prompts/get)')
    .option('--policy <file>', 'a policy file to use instead of the config’s')
    .option('--json', 'print the decision as JSON')
    .action((o: ExplainOptions) => explain(o))
  return program
}

async function main(): Promise<void> {
  const program = configureProgram(buildProgram())
  for (const c of program.commands) configureProgram(c)
  await program.parseAsync(process.argv)
}

void runCli(main)
