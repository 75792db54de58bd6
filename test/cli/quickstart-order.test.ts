/**
 * The original description's Quick Start order: keys, then `mcp-allowlist add --config
 * server_config.yml` before any config file exists. The error says how to write one, and after
 * `mcp-config-validate --init` the same command works.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'

const CLI = (name: string): string => path.resolve('dist/bin', `${name}.js`)

function run(cwd: string, name: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME }
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI(name), ...args], { cwd, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

test('allowlist add before any config: the error names --init; after --init the same command works', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'quickstart-order-'))
  try {
    assert.equal((await run(dir, 'mcp-keygen', ['--output-dir', './keys', '--key-name', 'client'])).code, 0)
    const add = ['add', '--config', 'server_config.yml', '--key-file', './keys/client_public.pem', '--metadata', '{"role": "trusted_client"}']
    const first = await run(dir, 'mcp-allowlist', add)
    assert.equal(first.code, 1)
    assert.match(first.stderr, /^error: server_config\.yml: no such file \(write a starting one with: mcp-config-validate --init server server_config\.yml\)$/m)

    const init = await run(dir, 'mcp-config-validate', ['--init', 'server', 'server_config.yml'])
    assert.equal(init.code, 0, init.stderr)
    const second = await run(dir, 'mcp-allowlist', add)
    assert.equal(second.code, 0, second.stderr)
    const list = await run(dir, 'mcp-allowlist', ['list', '--config', 'server_config.yml', '--format', 'json'])
    assert.match(list.stdout, /trusted_client/)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
