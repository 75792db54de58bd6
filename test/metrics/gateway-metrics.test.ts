/**
 * Issue 12: mcp-pki-gateway (the built bin) with `--metrics-port`, in front of an unmodified SDK
 * server over HTTP and over stdio: tool calls are counted by the tool names the upstream listed
 * (any other name is `other`) and by result; upstream statuses, open MCP sessions and the
 * request counters are there; `/ready` answers on the public port and `/metrics` does not.
 */
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { after, describe, test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { createAuthFetchFromConfig } from '../../src/mcp/client.js'
import { makeDeployment, GATEWAY_BIN, PLAIN_SERVER, type Deployment } from '../mcp/fixtures/deployment.js'
import { promtoolCheckMetrics } from './prometheus-helpers.js'

const children: ChildProcess[] = []
const deployments: Deployment[] = []
after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM')
  for (const d of deployments) await d.cleanup()
})

function spawnAndWait(args: string[], stream: 'stdout' | 'stderr', patterns: RegExp[]): Promise<RegExpExecArray[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let out = ''
    let err = ''
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()))
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()))
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${patterns.join(', ')}; stderr: ${err}`)), 20_000)
    const check = (): void => {
      const text = stream === 'stdout' ? out : err
      const matches = patterns.map((p) => p.exec(text))
      if (matches.every((m) => m !== null)) {
        clearTimeout(timer)
        resolve(matches as RegExpExecArray[])
      }
    }
    child[stream]!.on('data', check)
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code}; stderr: ${err}`))
    })
  })
}

/** The value of one sample line (`name{labels} value`), or undefined. */
function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

async function exercise(upstreamArgs: string[]): Promise<{ metrics: string; publicBase: string }> {
  assert.ok(existsSync(GATEWAY_BIN), `${GATEWAY_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  const d = await makeDeployment()
  deployments.push(d)
  const [listening, metricsLine] = await spawnAndWait(
    [GATEWAY_BIN, '--config', d.serverConfig, '--listen', '127.0.0.1:0', '--metrics-port', '0', ...upstreamArgs],
    'stderr',
    [/listening on (http:\/\/127\.0\.0\.1:\d+)\/mcp/, /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/],
  )
  const publicBase = listening![1]!
  const metricsUrl = metricsLine![1]!
  assert.notEqual(new URL(metricsUrl).port, new URL(publicBase).port)
  const config = await d.writeClientConfig('client', { serverUrl: `${publicBase}/auth` })
  const authFetch = await createAuthFetchFromConfig(config, `${publicBase}/mcp`, { interactive: false })
  const client = new Client({ name: 'metrics-client', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(`${publicBase}/mcp`), { fetch: authFetch }))
  try {
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name).sort(), ['caller', 'echo'])
    for (let i = 0; i < 3; i++) await client.callTool({ name: 'echo', arguments: { text: `n${i}` } })
    await client.callTool({ name: 'caller', arguments: {} })
    // A tool the upstream never listed: counted as `other`, whatever the upstream answers.
    await client.callTool({ name: 'no-such-tool', arguments: {} }).catch(() => undefined)
    const metrics = await (await fetch(metricsUrl)).text()
    return { metrics, publicBase }
  } finally {
    await client.close()
  }
}

function checkCommon(metrics: string, sessions = 1): void {
  assert.equal(sample(metrics, 'mcp_pki_gateway_tool_calls_total{tool="echo",result="ok"}'), 3)
  assert.equal(sample(metrics, 'mcp_pki_gateway_tool_calls_total{tool="caller",result="ok"}'), 1)
  const other = metrics.split('\n').filter((l) => l.startsWith('mcp_pki_gateway_tool_calls_total{tool="other"'))
  assert.equal(other.reduce((n, l) => n + Number(l.split(' ')[1]), 0), 1, other.join('\n'))
  assert.doesNotMatch(metrics, /no-such-tool/, 'an unlisted tool name never becomes a label')
  assert.equal(sample(metrics, 'mcp_pki_gateway_mcp_sessions'), sessions)
  assert.ok((sample(metrics, 'mcp_pki_gateway_upstream_requests_total{status="200"}') ?? 0) >= 5, metrics)
  assert.ok((sample(metrics, 'mcp_pki_requests_total{result="success",code="ok"}') ?? 0) >= 6)
  assert.equal(sample(metrics, 'mcp_pki_handshakes_total{result="success",code="ok"}'), 1)
  const check = promtoolCheckMetrics(metrics)
  assert.equal(check.status, 0, check.output)
}

describe('gateway metrics', () => {
  test('HTTP upstream: tool calls by listed name and result, upstream statuses, sessions; /ready public, /metrics not', { timeout: 60_000 }, async () => {
    const [up] = await spawnAndWait([PLAIN_SERVER, 'http'], 'stdout', [/listening (http:\/\/\S+)/])
    const { metrics, publicBase } = await exercise(['--upstream', up![1]!])
    // With an HTTP upstream the gateway keeps no session table: each MCP session id is sealed for
    // its key (it survives restarts and works across a fleet), so there is nothing to count here.
    checkCommon(metrics, 0)
    assert.equal((await fetch(`${publicBase}/ready`)).status, 200)
    assert.equal((await fetch(`${publicBase}/metrics`)).status, 404)
  })

  test('stdio upstream: the same tool-call counts', { timeout: 60_000 }, async () => {
    const { metrics } = await exercise(['--upstream-command', `${JSON.stringify(process.execPath)} ${JSON.stringify(PLAIN_SERVER)} stdio`])
    checkCommon(metrics)
  })
})

test('examples/mcp-server.ts (the documented library call) serves /metrics when MCP_METRICS_ENABLED is set', { timeout: 60_000 }, async () => {
  const d = await makeDeployment()
  deployments.push(d)
  const example = new URL('../../examples/mcp-server.ts', import.meta.url).pathname
  const child = spawn(process.execPath, ['--import', 'tsx', example, '--config', d.serverConfig, '--port', '0'], {
    env: { ...process.env, MCP_METRICS_ENABLED: 'true', MCP_METRICS_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let out = ''
  let err = ''
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  const [metricsUrl, mcpUrl] = await new Promise<[string, string]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no metrics/listening lines; stdout ${out}; stderr ${err}`)), 20_000)
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /metrics on (http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(out)
      const s = /MCP server on (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(out)
      if (m && s) {
        clearTimeout(timer)
        resolve([m[1]!, s[1]!])
      }
    })
  })
  const config = await d.writeClientConfig('client', { serverUrl: mcpUrl.replace(/\/mcp$/, '/auth') })
  const authFetch = await createAuthFetchFromConfig(config, mcpUrl, { interactive: false })
  const client = new Client({ name: 'example-client', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { fetch: authFetch }))
  await client.callTool({ name: 'whoami', arguments: {} })
  await client.close()
  const text = await (await fetch(metricsUrl)).text()
  assert.equal(sample(text, 'mcp_pki_handshakes_total{result="success",code="ok"}'), 1)
  assert.ok((sample(text, 'mcp_pki_requests_total{result="success",code="ok"}') ?? 0) >= 3, text)
  assert.equal((await fetch(mcpUrl.replace(/\/mcp$/, '/metrics'))).status === 200, false, 'not on the public port')
})
