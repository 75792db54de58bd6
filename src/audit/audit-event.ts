/**
 * Audit event names. Events are dotted lowercase (`handshake.success`). The product
 * description's `filter_events` names are accepted as aliases:
 *
 * | description name | event             |
 * |------------------|-------------------|
 * | auth_success     | handshake.success |
 * | auth_failure     | handshake.failure |
 * | key_validation   | key.validation    |
 *
 * `filter_events` also accepts a section wildcard such as `handshake.*`.
 * @module
 */

export const AUDIT_EVENTS = [
  'handshake.success',
  'handshake.failure',
  'session.rejected',
  'key.validation',
  'allowlist.reload',
  'allowlist.reload_failed',
  'server.start',
  'server.stop',
  'server_key.reload',
  'server_key.reload_failed',
  'krl.reload',
  'krl.reload_failed',
  'authz.denied',
  'authz.allowed',
  'authz.reload',
  'authz.reload_failed',
] as const

export type AuditEventName = (typeof AUDIT_EVENTS)[number]

/** Description-compatible names → our event names. */
export const AUDIT_EVENT_ALIASES: Readonly<Record<string, AuditEventName>> = Object.freeze({
  auth_success: 'handshake.success',
  auth_failure: 'handshake.failure',
  key_validation: 'key.validation',
})

/** Maps a filter name (alias, event or `section.*`) to its canonical form. */
export function canonicalEventName(name: string): string {
  const lower = name.trim().toLowerCase()
  return AUDIT_EVENT_ALIASES[lower] ?? lower
}

/** True when `name` is a known event, alias, or a wildcard over a known section. */
export function isKnownEventFilter(name: string): boolean {
  const c = canonicalEventName(name)
  if ((AUDIT_EVENTS as readonly string[]).includes(c)) return true
  if (c.endsWith('.*')) {
    const prefix = c.slice(0, -1)
    return AUDIT_EVENTS.some((e) => e.startsWith(prefix))
  }
  return false
}
