/** The `metrics` section (issue 12): defaults, checks, environment overrides, cross-field rules. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ConfigError } from '../../../src/errors.js'
import { parseConfig } from '../../../src/config/load-config.js'

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`)
    return err.problems
  }
  assert.fail('expected a ConfigError')
}

test('metrics are off by default, on 127.0.0.1:9464 when turned on', () => {
  assert.deepEqual(parseConfig('', { env: {} }).config.metrics, { enabled: false, host: '127.0.0.1', port: 9464 })
  assert.deepEqual(parseConfig('metrics:\n', { env: {} }).config.metrics, { enabled: false, host: '127.0.0.1', port: 9464 })
  assert.deepEqual(parseConfig('metrics:\n  enabled: true\n  port: 9100\n', { env: {} }).config.metrics, { enabled: true, host: '127.0.0.1', port: 9100 })
})

test('a wrong metrics value or key names the path', () => {
  assert.deepEqual(problemsOf(() => parseConfig('metrics:\n  port: 70000\n', { env: {} })), ['metrics.port: expected a port number 0-65535, got 70000'])
  assert.deepEqual(problemsOf(() => parseConfig('metrics:\n  enabled: sometimes\n', { env: {} })), ['metrics.enabled: expected true or false, got "sometimes"'])
  assert.deepEqual(problemsOf(() => parseConfig('metrics:\n  prot: 1\n', { env: {} })), ['unknown key "metrics.prot" (did you mean "port"?)'])
})

test('metrics on the public port is refused; on every interface it is a warning', () => {
  const same = problemsOf(() => parseConfig('metrics:\n  enabled: true\n  port: 8443\n', { env: {} }))
  assert.equal(same.length, 1)
  assert.match(same[0]!, /^metrics\.port: must differ from transport\.port \(8443\)/)
  // off: the port is not used, no complaint
  assert.equal(parseConfig('metrics:\n  port: 8443\n', { env: {} }).config.metrics.port, 8443)
  const { warnings } = parseConfig('metrics:\n  enabled: true\n  host: 0.0.0.0\n', { env: {} })
  assert.equal(warnings.length, 1)
  assert.match(warnings[0]!, /^metrics\.host "0\.0\.0\.0" serves \/metrics to every network/)
})

test('MCP_METRICS_ENABLED, MCP_METRICS_HOST and MCP_METRICS_PORT override the file', () => {
  const { config } = parseConfig('metrics:\n  enabled: false\n  port: 9100\n', { env: { MCP_METRICS_ENABLED: 'yes', MCP_METRICS_HOST: '127.0.0.2', MCP_METRICS_PORT: '9200' } })
  assert.deepEqual(config.metrics, { enabled: true, host: '127.0.0.2', port: 9200 })
  assert.equal(parseConfig('metrics:\n  enabled: true\n', { env: { MCP_METRICS_ENABLED: '0' } }).config.metrics.enabled, false)
})

test('bad MCP_METRICS_* values are errors naming the variable', () => {
  assert.deepEqual(problemsOf(() => parseConfig('', { env: { MCP_METRICS_PORT: 'nine' } })), ['environment variable MCP_METRICS_PORT: expected a port number 0-65535, got "nine"'])
  assert.deepEqual(problemsOf(() => parseConfig('', { env: { MCP_METRICS_ENABLED: 'maybe' } })), ['environment variable MCP_METRICS_ENABLED: expected true, false, 1, 0, yes or no, got "maybe"'])
  assert.deepEqual(problemsOf(() => parseConfig('', { env: { MCP_METRICS_HOST: 'a b' } })), ['environment variable MCP_METRICS_HOST: expected a host name or address, got "a b"'])
  // the cross-field rule sees the environment too
  assert.match(problemsOf(() => parseConfig('', { env: { MCP_METRICS_ENABLED: 'true', MCP_METRICS_PORT: '8443' } }))[0]!, /^metrics\.port: must differ/)
})
