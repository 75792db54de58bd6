import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'

const BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'cli', 'demo.js')

test('the demo runs a whole mutual authentication on embedded defaults, shows the refusals, cleans up and exits 0', () => {
  assert.ok(existsSync(BIN), `${BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  const r = spawnSync(process.execPath, [BIN], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stdout + r.stderr)
  assert.match(r.stdout, /Mutual authentication over HTTP/)
  assert.match(r.stdout, /Mutual authentication over WebSocket/)
  assert.match(r.stdout, /✓ refused: HTTP 401 replay_detected/)
  assert.match(r.stdout, /✓ refused: authentication_failed/)
  assert.match(r.stdout, /server_key_mismatch/)
  assert.doesNotMatch(r.stdout, /✗/)
  assert.match(r.stdout, /Demo complete/)
  const dir = /in (\/\S+mcp-pki-demo-\S+)/.exec(r.stdout)?.[1]
  assert.ok(dir)
  assert.equal(existsSync(dir), false, 'the temporary folder was removed')
})
