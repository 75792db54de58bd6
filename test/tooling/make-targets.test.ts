/**
 * The Makefile and CI script as a user and CI meet them: the readable test reporter with its
 * closing `N passed, N failed` line, the install stamp that trusts README's `npm ci`, and the
 * targets of the original description (test-performance, test-cross-language, setup-test-env).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** The environment without NODE_TEST_CONTEXT: a nested `node --test` must report on its own. */
function ownEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.NODE_TEST_CONTEXT
  return env
}

function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = ownEnv()): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

test('the test reporter prints each test, failures in full, Node\'s closing counts and a last "N passed, N failed" line', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reporter-'))
  try {
    await writeFile(
      join(dir, 'sample.test.mjs'),
      "import { test } from 'node:test'\nimport assert from 'node:assert/strict'\n" +
        "test('adds', () => assert.equal(1 + 1, 2))\ntest('parent', async (t) => { await t.test('child', () => {}) })\n" +
        "test('breaks', () => assert.equal('left', 'right'))\n",
    )
    const r = await run(process.execPath, ['--test', `--test-reporter=${join(ROOT, 'scripts/test-reporter.mjs')}`, 'sample.test.mjs'], dir)
    assert.equal(r.code, 1, 'a failing test fails the run')
    assert.match(r.stdout, /✔ adds/)
    assert.match(r.stdout, /✔ child/)
    assert.match(r.stdout, /✖ failing tests:[\s\S]*✖ breaks[\s\S]*'left'[\s\S]*'right'/, 'the failure is shown in full')
    assert.match(r.stdout, /^ℹ pass 3$/m, "Node's closing lines are kept")
    assert.match(r.stdout, /^ℹ fail 1$/m)
    assert.equal(r.stdout.trimEnd().split('\n').at(-1), '3 passed, 1 failed')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('the reporter shows a failure in .test-tree JavaScript at its TypeScript file, line and column', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'reporter-map-'))
  try {
    // A TypeScript test whose failing assertion is on line 7, transpiled as build-test-tree does.
    const source = [
      "import { test } from 'node:test'",
      "import assert from 'node:assert/strict'",
      'interface Pair {',
      '  left: string',
      '}',
      "const pair: Pair = { left: 'left' }",
      "test('breaks', () => assert.equal(pair.left, 'right'))",
    ].join('\n')
    const { transform } = await import('esbuild')
    const js = await transform(source, { loader: 'ts', format: 'esm', sourcemap: 'inline', sourcefile: join(dir, 'sample.test.ts') })
    await mkdir(join(dir, '.test-tree'))
    await writeFile(join(dir, '.test-tree', 'sample.test.js'), js.code)
    const r = await run(process.execPath, ['--test', `--test-reporter=${join(ROOT, 'scripts/test-reporter.mjs')}`, '.test-tree/sample.test.js'], dir)
    assert.equal(r.code, 1)
    assert.ok(r.stdout.includes(`${join(dir, 'sample.test.ts')}:7:`), r.stdout)
    assert.ok(r.stdout.includes('test at sample.test.ts:7:'), r.stdout)
    assert.ok(!/\.test-tree\/sample\.test\.js:\d+/.test(r.stdout), 'no transpiled location is left')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

/** A folder with the Makefile, a lockfile and an `npm` on PATH that only records its calls. */
async function makeSandbox(): Promise<{ dir: string; env: NodeJS.ProcessEnv; npmCalls: () => Promise<string> }> {
  const dir = await mkdtemp(join(tmpdir(), 'make-stamp-'))
  await copyFile(join(ROOT, 'Makefile'), join(dir, 'Makefile'))
  await writeFile(join(dir, 'package-lock.json'), '{}\n')
  await mkdir(join(dir, 'bin'))
  const log = join(dir, 'npm-calls.log')
  await writeFile(join(dir, 'bin', 'npm'), `#!/bin/sh\necho "npm $*" >> '${log}'\nmkdir -p node_modules && echo '{}' > node_modules/.package-lock.json\n`)
  await chmod(join(dir, 'bin', 'npm'), 0o755)
  const env = { ...ownEnv(), PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}` }
  return { dir, env, npmCalls: async () => (existsSync(log) ? await readFile(log, 'utf8') : '') }
}

test("make install trusts a node_modules that README's `npm ci` installed, and reinstalls when the lockfile changes", async () => {
  const { dir, env, npmCalls } = await makeSandbox()
  try {
    // README's Install step: `npm ci` wrote node_modules/.package-lock.json after the lockfile.
    await mkdir(join(dir, 'node_modules'))
    await writeFile(join(dir, 'node_modules', '.package-lock.json'), '{}\n')
    const past = new Date(Date.now() - 60_000)
    await utimes(join(dir, 'package-lock.json'), past, past)
    const first = await run('make', ['install'], dir, env)
    assert.equal(first.code, 0, first.stderr)
    assert.equal(await npmCalls(), '', 'no reinstall after npm ci')
    assert.ok(existsSync(join(dir, 'node_modules', '.install-stamp')))

    // The lockfile changes (git pull): the next target installs again.
    const later = new Date(Date.now() + 60_000)
    await utimes(join(dir, 'package-lock.json'), later, later)
    const second = await run('make', ['install'], dir, env)
    assert.equal(second.code, 0, second.stderr)
    assert.match(await npmCalls(), /^npm ci --no-audit --no-fund$/m)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('the original description\'s make targets exist and run what they say', async () => {
  const dry = async (target: string): Promise<string> => {
    const r = await run('make', ['-n', '--no-print-directory', target], ROOT)
    assert.equal(r.code, 0, `make -n ${target}: ${r.stderr}`)
    return r.stdout
  }
  assert.match(await dry('test-cross-language'), /--test .*test\/unit\/handshake\/vectors\.test\.js/)
  assert.match(await dry('test-performance'), /bench\/run\.ts --quick/)
  assert.match(await dry('setup-test-env'), /redis-server/)
  assert.match(await dry('pack'), /npm pack/)
  assert.match(await dry('test'), /--test-reporter=\.\/scripts\/test-reporter\.mjs/)
})

test('CI prepares the machine through make setup-test-env only, then lints and tests', async () => {
  const ci = await readFile(join(ROOT, '.ci/run'), 'utf8')
  const commands = ci.split('\n').filter((line) => /^make /.test(line))
  assert.deepEqual(commands, ['make setup-test-env', 'make lint', 'make test'])
  assert.doesNotMatch(ci, /apt-get/, 'installing services is the Makefile\'s job')
})
