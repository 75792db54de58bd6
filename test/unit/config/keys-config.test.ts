import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import { ConfigError } from '../../../src/errors.js'
import { parseConfig } from '../../../src/config/load-config.js'

test('keys.certificate_path and keys.agent default to null and false', () => {
  const { config } = parseConfig('', { env: {} })
  assert.equal(config.keys.certificate_path, null)
  assert.equal(config.keys.agent, false)
})

test('keys.certificate_path resolves against the config folder; keys.agent takes a boolean', () => {
  const { config } = parseConfig('keys:\n  certificate_path: keys/client-cert.pub\n  agent: true\n', { env: {}, baseDir: '/cfg' })
  assert.equal(config.keys.certificate_path, '/cfg/keys/client-cert.pub')
  assert.equal(config.keys.agent, true)
})

test('MCP_KEY_AGENT=1 turns the agent on, MCP_KEY_AGENT=no off; a bad value names the variable', () => {
  assert.equal(parseConfig('', { env: { MCP_KEY_AGENT: '1' } }).config.keys.agent, true)
  assert.equal(parseConfig('keys:\n  agent: true\n', { env: { MCP_KEY_AGENT: 'no' } }).config.keys.agent, false)
  assert.throws(() => parseConfig('', { env: { MCP_KEY_AGENT: 'maybe' } }), (err: unknown) => err instanceof ConfigError && /MCP_KEY_AGENT/.test(err.message))
})

test('MCP_CERTIFICATE_PATH sets keys.certificate_path (relative to the current directory)', () => {
  const { config } = parseConfig('', { env: { MCP_CERTIFICATE_PATH: 'c-cert.pub' } })
  assert.equal(config.keys.certificate_path, path.resolve(process.cwd(), 'c-cert.pub'))
})

test('wrong types are errors naming the key', () => {
  assert.throws(() => parseConfig('keys:\n  agent: "sometimes"\n', { env: {} }), (err: unknown) => err instanceof ConfigError && /keys\.agent/.test(err.message))
  assert.throws(() => parseConfig('keys:\n  certificate_path: 7\n', { env: {} }), (err: unknown) => err instanceof ConfigError && /keys\.certificate_path/.test(err.message))
})

test('keys.agent on a server: several workers need auth.ticket_key (no seed to derive one from); a Redis fleet without it is a warning', () => {
  assert.throws(
    () => parseConfig('keys:\n  agent: true\ntransport:\n  workers: 2\n', { env: {} }),
    (err: unknown) => err instanceof ConfigError && /keys\.agent: .*transport\.workers other than 1 needs auth\.ticket_key/.test(err.message),
  )
  const key = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff)).toString('base64url')
  assert.equal(parseConfig(`keys:\n  agent: true\ntransport:\n  workers: 2\nauth:\n  ticket_key: ${key}\n`, { env: {} }).config.transport.workers, 2)
  const { warnings } = parseConfig('keys:\n  agent: true\nauth:\n  nonce_store:\n    type: redis\n', { env: {} })
  assert.ok(warnings.some((w) => /keys\.agent without auth\.ticket_key: .*random ticket keys.*set auth\.ticket_key/.test(w)), warnings.join('\n'))
  assert.deepEqual(parseConfig('keys:\n  agent: true\n', { env: {} }).warnings, [])
})
