/**
 * The Grafana dashboard (docs/grafana/mcp-pki-auth-dashboard.json) names only series this package
 * exposes, and docs/operations.md's series table lists every one of them.
 */
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { test } from 'node:test'
import { createAuthMetrics } from '../../src/metrics/auth-metrics.js'
import { addGatewayMetrics } from '../../src/metrics/gateway-metrics.js'

import { dashboardExpressions } from './prometheus-helpers.js'

const ROOT = new URL('../../', import.meta.url)

async function exposedFamilies(): Promise<Set<string>> {
  const metrics = createAuthMetrics()
  addGatewayMetrics(metrics, () => 0)
  const text = await metrics.metrics()
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!))
}

function familyOf(series: string): string {
  return series.replace(/_(bucket|sum|count)$/, '')
}

test('every series the dashboard queries is exposed', async () => {
  const families = await exposedFamilies()
  const exprs = await dashboardExpressions()
  assert.ok(exprs.length >= 20)
  for (const expr of exprs) {
    for (const [name] of expr.matchAll(/\b(mcp_pki_[a-z_]+|process_[a-z_]+|nodejs_[a-z0-9_]+)\b/g)) {
      assert.ok(families.has(familyOf(name)) || families.has(name), `${name} (in ${expr}) is not exposed`)
    }
  }
})

test('docs/operations.md lists every mcp_pki_ series', async () => {
  const doc = await readFile(new URL('docs/operations.md', ROOT), 'utf8')
  for (const family of await exposedFamilies()) {
    if (family.startsWith('mcp_pki_')) assert.ok(doc.includes(`\`${family}\``), `${family} is missing from docs/operations.md`)
  }
})
