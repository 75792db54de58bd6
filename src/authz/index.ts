/**
 * Per-tool authorization for MCP (published as `mcp-pki-auth/authz`): a policy schema, its
 * compiler, a hot-reloading policy source, and the {@link Authorizer} interface that
 * `createMcpAuth({ authorization })` and `mcp-pki-gateway` enforce. See docs/authorization.md.
 * @module
 */
export { compilePolicy, type CompiledPolicy } from './compile-policy.js'
export { compileGlobs, type NameMatcher } from './glob.js'
export { FORBIDDEN_BY_POLICY_CODE, FORBIDDEN_BY_POLICY_MESSAGE } from './jsonrpc-enforcement.js'
export { subjectOf } from './http-enforcement.js'
export { loadPolicy, policySourceOf, watchPolicy, type PolicyHolder, type PolicySource, type WatchPolicyOptions } from './policy-source.js'
export { startPolicyFromConfig } from './policy-from-config.js'
export { validatePolicyObject, type PolicyDocument, type PolicyParseResult, type RuleSpec } from './policy-schema.js'
export type { AuthzDecision, AuthzKind, AuthzRequest, AuthzSubject, Authorizer } from './types.js'
