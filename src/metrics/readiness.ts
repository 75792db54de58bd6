/**
 * Readiness (`GET /ready`): ready once the allowlist is loaded and every store the server needs
 * answers (the Redis nonce store, the Redis revocation list); not ready again while one does not.
 * `/health` stays the liveness probe (the process runs). Results are kept for a short while so a
 * flood of `/ready` requests never turns into a flood of store checks.
 * @module
 */

/** One dependency: resolves when usable, rejects (or returns false) when not. */
export type ReadinessCheck = () => boolean | Promise<boolean | void>

export interface ReadinessReport {
  ready: boolean
  /** Check name → `ok` or `unavailable` (no detail: the body may be public). */
  checks: Record<string, 'ok' | 'unavailable'>
}

export interface Readiness {
  check(): Promise<ReadinessReport>
}

/** @param cacheMs how long one result is reused (default 250 ms) */
export function createReadiness(checks: Readonly<Record<string, ReadinessCheck>>, cacheMs = 250): Readiness {
  let last: { at: number; report: Promise<ReadinessReport> } | undefined
  async function run(): Promise<ReadinessReport> {
    const names = Object.keys(checks)
    const results = await Promise.all(
      names.map(async (name) => {
        try {
          return (await checks[name]!()) !== false
        } catch {
          return false
        }
      }),
    )
    const report: ReadinessReport = { ready: results.every(Boolean), checks: {} }
    names.forEach((name, i) => (report.checks[name] = results[i] ? 'ok' : 'unavailable'))
    return report
  }
  return {
    check() {
      const now = Date.now()
      if (last === undefined || now - last.at >= cacheMs) last = { at: now, report: run() }
      return last.report
    },
  }
}
