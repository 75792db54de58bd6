import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, access, stat } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { join } from 'node:path'

const root = fileURLToPath(new URL('../..', import.meta.url))

test('every source file named by package.json exports and bin exists, and the root exports the main API', async () => {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as {
    exports: Record<string, string | { types: string; default: string }>
    bin: Record<string, string>
  }
  const toSrc = (p: string) => join(root, p.replace('./dist/', 'src/').replace(/\.js$/, '.ts').replace(/\.d\.ts$/, '.ts'))
  for (const [name, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue
    await access(toSrc(target.default)).catch(() => assert.fail(`export ${name}: ${target.default} has no source`))
  }
  // Commands are bundled by scripts/bundle-cli.mjs from src/cli/bin/<name>.ts or src/cli/<name>.ts.
  const commandSource = (name: string) => {
    const wrapper = join(root, 'src', 'cli', 'bin', `${name}.ts`)
    return existsSync(wrapper) ? wrapper : join(root, 'src', 'cli', `${name}.ts`)
  }
  for (const [name, target] of Object.entries(pkg.bin)) {
    assert.equal(target, `./dist/bin/${name}.js`, `bin ${name} is the bundled command`)
    await access(commandSource(name)).catch(() => assert.fail(`bin ${name}: ${target} has no source`))
    const text = await readFile(commandSource(name), 'utf8')
    assert.ok(text.startsWith('#!/usr/bin/env node'), `bin ${name} starts with a node shebang`)
    const built = join(root, target)
    assert.ok((await readFile(built, 'utf8')).startsWith('#!/usr/bin/env node'), `${target} keeps the shebang`)
    assert.ok(((await stat(built)).mode & 0o111) !== 0, `${target} is executable`)
  }
  const api = await import('../../src/index.js')
  for (const name of ['createAuthService', 'createServerHandshake', 'createClientHandshake', 'createSessionVerifier', 'loadConfig', 'Allowlist', 'AuthError', 'createMcpAuth', 'createAuthFetch', 'KeyManager', 'ACLManager', 'AuthenticationEngine', 'externalServerKey', 'KrlRevocation', 'watchKrlFile']) {
    assert.equal(typeof (api as Record<string, unknown>)[name], 'function', name)
  }
})
