/**
 * Smoke test of the tools/call benchmark: a tiny run prints JSON with wall and CPU figures for the
 * three peers, and the table `npm run bench` prints has a row per peer. Asserts no speed.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { toolsCallTable, type ToolsCallResult } from '../../bench/mcp-tools-call.js'
import { FLOOR_KINDS, floorTable, type FloorResult } from '../../bench/tools-call-floor.js'
import { benchCommand } from './bench-command.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

test('bench/mcp-tools-call.ts: plain, JWT and mcp-pki-auth side by side, wall and CPU per call of client and server', async () => {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, benchCommand('bench/mcp-tools-call.ts', ['--quick', '--calls', '20', '--rounds', '2', '--warmup', '20', '--concurrent-calls', '5', '--concurrent-rounds', '2', '--json']), { cwd: ROOT, timeout: 110_000, maxBuffer: 8 << 20 }, (err, out, errOut) => {
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

test('bench/tools-call-floor.ts: plain, header bytes, a minimal check without and with the proof MAC, and mcp-pki-auth, CPU per call of both sides', async () => {
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, benchCommand('bench/tools-call-floor.ts', ['--calls', '20', '--rounds', '1', '--json']), { cwd: ROOT, timeout: 110_000, maxBuffer: 8 << 20 }, (err, out, errOut) => {
      if (err !== null) reject(new Error(`${err.message}\n${errOut}`))
      else resolve(out)
    })
  })
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as FloorResult
  assert.equal(r.calls_per_kind, 20)
  assert.deepEqual(r.kinds, [...FLOOR_KINDS])
  for (const kind of FLOOR_KINDS) {
    // Every path answered every call (a refused proof would have thrown in the SDK client) and was measured on both sides.
    assert.ok(r.rows[kind]!.client_us > 0, `${kind} client CPU measured`)
    assert.ok(r.rows[kind]!.server_us > 0, `${kind} server CPU measured`)
  }
  assert.equal(r.rows.plain.client_over_plain_us, 0)
  const table = floorTable(r).split('\n')
  assert.equal(table.length, 2 + FLOOR_KINDS.length)
  assert.match(table[2]!, /^\| plain SDK client and server/)
  assert.match(table[5]!, /the floor/)
  assert.match(table[6]!, /^\| mcp-pki-auth/)
})
