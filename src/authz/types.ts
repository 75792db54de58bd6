/**
 * The authorization interface shared by the built-in policy engine and any external one (Cedar,
 * OPA …): who is calling ({@link AuthzSubject}), what they ask for ({@link AuthzRequest}), and the
 * answer ({@link AuthzDecision}).
 * @module
 */

/** What a request may name: a tool (`tools/call`), a resource URI (`resources/read`, `resources/subscribe`) or a prompt (`prompts/get`). */
export type AuthzKind = 'tool' | 'resource' | 'prompt'

/** The caller, as established by authentication and the caller's allowlist entry. */
export interface AuthzSubject {
  /** Lowercase hex SHA-256 of the caller's public key. */
  readonly fingerprint: string
  readonly role: string | undefined
  readonly org: string | undefined
  /** The session's scopes (metadata `scopes` plus `role:<role>` by default). */
  readonly scopes: readonly string[]
  /** The allowlist entry's metadata. Its object identity keys the decision cache: treat it as immutable. */
  readonly metadata: Readonly<Record<string, unknown>>
}

export interface AuthzRequest {
  readonly kind: AuthzKind
  /** Tool or prompt name, or resource URI (for a resource template in a list: its `uriTemplate`). */
  readonly name: string
  /** `tools/call` arguments / `prompts/get` arguments; undefined when filtering a list. */
  readonly arguments?: Readonly<Record<string, unknown>> | undefined
}

export interface AuthzDecision {
  readonly allowed: boolean
  /** The rule that decided (its `name`, or `rules[i]`), or `default`. Never sent to the caller. */
  readonly rule: string
}

/**
 * Decides one request. Must be synchronous and fast: it runs for every call and for every item of a
 * listed view. An external engine (Cedar's `isAuthorized` from `@cedar-policy/cedar-wasm`, OPA's
 * compiled Wasm from `@open-policy-agent/opa-wasm`) plugs in here. A throw is a denial.
 */
export interface Authorizer {
  decide(subject: AuthzSubject, request: AuthzRequest): AuthzDecision
  /** Audit allowed calls too (`authz.allowed`), not only denials. */
  readonly auditAllowed?: boolean | undefined
}
