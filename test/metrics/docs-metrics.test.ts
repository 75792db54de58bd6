/**
 * docs/operations.md, "Metrics and readiness": its alert rules pass `promtool check rules`, its
 * config block validates, and its library snippet runs as pasted (with a free port instead of 9464,
 * which a shared machine may have taken) against the built package.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'
import { parseConfig } from '../../src/config/load-config.js'
import { createSandbox } from '../../src/server/sandbox.js'
import { freePort } from '../integration/redis-helpers.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

async function metricsSection(): Promise<string> {
  const doc = await readFile(join(ROOT, 'docs/operations.md'), 'utf8')
  const start = doc.indexOf('## Metrics and readiness')
  assert.ok(start >= 0)
  return doc.slice(start, doc.indexOf('\n## ', start + 5))
}

function blocks(section: string, lang: string): string[] {
  return [...section.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!)
}

test('the alert rules in docs/operations.md pass promtool check rules', async () => {
  const rules = blocks(await metricsSection(), 'yaml').find((b) => b.includes('groups:'))
  assert.ok(rules, 'an alert rules block')
  const dir = await mkdtemp(join(tmpdir(), 'mcp-rules-'))
  try {
    await writeFile(join(dir, 'rules.yml'), rules)
    const r = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8' })
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`)
    assert.match(r.stdout, /SUCCESS: 9 rules found/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('the metrics config block in docs/operations.md validates', async () => {
  const yaml = blocks(await metricsSection(), 'yaml').find((b) => b.startsWith('metrics:'))
  assert.ok(yaml)
  assert.deepEqual(parseConfig(yaml, { env: {} }).config.metrics, { enabled: true, host: '127.0.0.1', port: 9464 })
})

test('the library snippet in docs/operations.md runs as pasted and serves /metrics', { timeout: 60_000 }, async () => {
  const snippet = blocks(await metricsSection(), 'ts')[0]
  assert.ok(snippet !== undefined && snippet.includes('serveMetrics'))
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'mcp-snippet-'))
  // Inside the package folder so `import … from 'mcp-pki-auth'` resolves to this package (dist/).
  const script = join(ROOT, `.metrics-snippet-${process.pid}.mjs`)
  try {
    const sb = await createSandbox(dir, { server: { audit: { enabled: false } } })
    await writeFile(join(dir, 'server_config.yml'), await readFile(sb.serverConfigPath, 'utf8'))
    await writeFile(script, `${snippet.replace('port: 9464', `port: ${port}`)}\nconsole.log('serving ' + listener.url)\n`)
    const child = spawn(process.execPath, [script], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    try {
      let out = ''
      let err = ''
      child.stderr.on('data', (d: Buffer) => (err += d.toString()))
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "serving" line; stderr: ${err}`)), 20_000)
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString()
          const m = /serving (\S+)/.exec(out)
          if (m) {
            clearTimeout(timer)
            resolve(m[1]!)
          }
        })
        child.once('exit', (code) => reject(new Error(`snippet exited ${code}: ${err}`)))
      })
      assert.equal(url, `http://127.0.0.1:${port}/metrics`)
      const text = await (await fetch(url)).text()
      assert.match(text, /^# TYPE mcp_pki_handshakes_total counter$/m)
      assert.match(text, /^mcp_pki_allowlist_entries 1$/m)
    } finally {
      child.kill('SIGTERM')
    }
  } finally {
    await rm(script, { force: true })
    await rm(dir, { recursive: true, force: true })
  }
})
