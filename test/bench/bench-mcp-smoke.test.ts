/**
 * Smoke test of the tools/call benchmark: a tiny run prints JSON with wall and CPU figures for the
 * three peers, and the table `npm run bench` prints has a row per peer. Asserts no speed.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { toolsCallTable, type ToolsCallResult } from '../../bench/mcp-tools-call.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

test('bench/mcp-tools-call.ts: plain, JWT and mcp-pki-auth side by side, wall and CPU per call of client and server', async () => {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'bench/mcp-tools-call.ts', '--quick', '--calls', '20', '--rounds', '2', '--json'], { cwd: ROOT, timeout: 110_000, maxBuffer: 8 << 20 }, (err, out, errOut) => {
      if (err !== null) reject(new Error(`${err.message}\n${errOut}`))
      else resolve(out)
    })
  })
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as ToolsCallResult
  assert.equal(r.handshakes, 1)
  for (const phase of ['sequential', 'concurrent'] as const) {
    const cpu = r.cpu_us_per_call[phase]
    for (const kind of ['plain', 'jwt', 'auth'] as const) {
      assert.ok(cpu[`${kind}_client_us`] > 0, `${phase} ${kind} client CPU measured`)
      assert.ok(cpu[`${kind}_server_us`] > 0, `${phase} ${kind} server CPU measured`)
      assert.ok(Math.abs(cpu[`${kind}_total_us`] - cpu[`${kind}_client_us`] - cpu[`${kind}_server_us`]) <= 0.15, `${phase} ${kind} total = client + server`)
    }
  }
  for (const kind of ['plain', 'jwt', 'auth'] as const) assert.ok(r.sequential[`${kind}_us_per_call`] > 0)
  const table = toolsCallTable(r).split('\n')
  assert.equal(table.length, 5)
  assert.match(table[0]!, /seq CPU µs\/call client \+ server/)
  assert.match(table[2]!, /^\| plain SDK server/)
  assert.match(table[3]!, /^\| bearer JWT/)
  assert.match(table[4]!, /^\| mcp-pki-auth/)
})
