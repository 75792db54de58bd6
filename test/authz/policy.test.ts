/** The policy schema, its compiler and its sources, without MCP: semantics, errors, reloads. */
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { compilePolicy } from '../../src/authz/compile-policy.js'
import { compileGlobs } from '../../src/authz/glob.js'
import { startPolicyFromConfig } from '../../src/authz/policy-from-config.js'
import { validatePolicyObject } from '../../src/authz/policy-schema.js'
import { loadPolicy, policySourceOf, watchPolicy } from '../../src/authz/policy-source.js'
import type { AuthzSubject } from '../../src/authz/types.js'
import { parseConfig } from '../../src/config/load-config.js'
import { ConfigError } from '../../src/errors.js'

const dirs: string[] = []
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'authz-policy-'))
  dirs.push(d)
  return d
}

function compile(doc: unknown) {
  const v = validatePolicyObject(doc)
  assert.ok(v.ok, v.ok ? '' : v.problems.join('\n'))
  return compilePolicy(v.policy)
}

const FP = 'ab'.repeat(32)
function who(over: Partial<AuthzSubject> = {}): AuthzSubject {
  return { fingerprint: FP, role: 'reader', org: 'acme', scopes: [], metadata: Object.freeze({}), ...over }
}

test('globs: * matches any run (slashes included), the rest matches itself, regex characters are literal', () => {
  const m = compileGlobs(['search_*', 'file:///public/*', 'a.b', 'x(y)'])
  for (const yes of ['search_', 'search_web', 'file:///public/a/b.txt', 'a.b', 'x(y)']) assert.ok(m.test(yes), yes)
  for (const no of ['research_web', 'file:///private/a', 'axb', 'xy', 'search']) assert.ok(!m.test(no), no)
  assert.ok(compileGlobs(['*']).test(''))
  assert.ok(!compileGlobs([]).test('anything'))
})

test('deny by default; a matching deny beats every allow; the deciding rule is the first in file order', () => {
  const p = compile({
    rules: [
      { name: 'readers', match: { role: 'reader' }, allow: { tools: ['echo', 'delete_*'] } },
      { match: { role: ['reader', 'writer'] }, allow: { tools: ['echo'] } },
      { match: { org: 'acme' }, deny: { tools: ['delete_*'] } },
    ],
  })
  assert.deepEqual(p.decide(who(), { kind: 'tool', name: 'echo' }), { allowed: true, rule: 'readers' })
  assert.deepEqual(p.decide(who(), { kind: 'tool', name: 'delete_user' }), { allowed: false, rule: 'rules[2]' })
  assert.deepEqual(p.decide(who({ org: 'other' }), { kind: 'tool', name: 'delete_user' }), { allowed: true, rule: 'readers' })
  assert.deepEqual(p.decide(who(), { kind: 'tool', name: 'other' }), { allowed: false, rule: 'default' })
  assert.deepEqual(p.decide(who(), { kind: 'prompt', name: 'echo' }), { allowed: false, rule: 'default' }, 'kinds are separate')
  assert.deepEqual(p.decide(who({ role: 'writer' }), { kind: 'tool', name: 'echo' }), { allowed: true, rule: 'rules[1]' })
})

test('default: allow lets through what no deny names', () => {
  const p = compile({ default: 'allow', rules: [{ match: { role: 'guest' }, deny: { tools: ['*'] } }] })
  assert.equal(p.decide(who(), { kind: 'tool', name: 'x' }).allowed, true)
  assert.deepEqual(p.decide(who({ role: 'guest' }), { kind: 'tool', name: 'x' }), { allowed: false, rule: 'rules[0]' })
})

test('match on fingerprint, scopes (all needed) and metadata fields (value, list of values, list-valued field)', () => {
  const p = compile({
    rules: [
      { name: 'by-key', match: { fingerprint: FP }, allow: { tools: ['k'] } },
      { name: 'by-scopes', match: { scopes: ['read', 'write'] }, allow: { tools: ['s'] } },
      { name: 'by-team', match: { metadata: { team: ['blue', 'green'], tier: 2 } }, allow: { tools: ['m'] } },
    ],
  })
  assert.equal(p.decide(who(), { kind: 'tool', name: 'k' }).allowed, true)
  assert.equal(p.decide(who({ fingerprint: 'cd'.repeat(32) }), { kind: 'tool', name: 'k' }).allowed, false)
  assert.equal(p.decide(who({ scopes: ['read'] }), { kind: 'tool', name: 's' }).allowed, false)
  assert.equal(p.decide(who({ scopes: ['write', 'read', 'x'] }), { kind: 'tool', name: 's' }).allowed, true)
  assert.equal(p.decide(who({ metadata: { team: 'green', tier: 2 } }), { kind: 'tool', name: 'm' }).allowed, true)
  assert.equal(p.decide(who({ metadata: { team: ['red', 'blue'], tier: 2 } }), { kind: 'tool', name: 'm' }).allowed, true)
  assert.equal(p.decide(who({ metadata: { team: 'green', tier: '2' } }), { kind: 'tool', name: 'm' }).allowed, false, 'types must match')
  assert.equal(p.decide(who({ metadata: { team: 'red', tier: 2 } }), { kind: 'tool', name: 'm' }).allowed, false)
})

test('the decision cache follows the caller: a new allowlist entry (new metadata object) or new scopes are decided afresh', () => {
  const p = compile({ rules: [{ match: { metadata: { team: 'blue' } }, allow: { tools: ['t'] } }] })
  assert.equal(p.decide(who({ metadata: { team: 'blue' } }), { kind: 'tool', name: 't' }).allowed, true)
  assert.equal(p.decide(who({ metadata: { team: 'red' } }), { kind: 'tool', name: 't' }).allowed, false)
  const q = compile({ rules: [{ match: { scopes: ['x'] }, allow: { tools: ['t'] } }] })
  const md = Object.freeze({})
  assert.equal(q.decide(who({ metadata: md, scopes: ['x'] }), { kind: 'tool', name: 't' }).allowed, true)
  assert.equal(q.decide(who({ metadata: md, scopes: [] }), { kind: 'tool', name: 't' }).allowed, false)
  assert.equal(q.decide(who({ metadata: md, scopes: ['x'] }), { kind: 'tool', name: 't' }).allowed, true)
})

test('unknown fields and bad values are errors naming their path, with a suggestion when one is close', () => {
  const v = validatePolicyObject({
    default: 'maybe',
    rulez: [],
    rules: [
      { match: { roles: 'x' }, allow: { tool: ['a'] } },
      { match: { fingerprint: 'XYZ' }, deny: { tools: 'a' } },
      { name: 'n', match: {} },
    ],
  })
  assert.ok(!v.ok)
  assert.deepEqual(v.problems.sort(), [
    'rulez: unknown field (did you mean "rules"?)',
    'default: expected allow or deny',
    'rules[0].allow.tool: unknown field (did you mean "tools"?)',
    'rules[0].match.roles: unknown field (did you mean "role"?)',
    'rules[1].deny.tools: expected a list of globs, e.g. ["echo", "search_*"]',
    'rules[1].match.fingerprint: expected a fingerprint: 64 lowercase hex characters (mcp-keygen --fingerprint shows it)',
    'rules[2]: a rule needs allow or deny (or both)',
  ].sort())
  const dup = validatePolicyObject({ rules: [{ name: 'n', allow: {} }, { name: 'n', deny: {} }] })
  assert.deepEqual(dup.ok ? [] : dup.problems, ['rules[1].name: rule name "n" is already used by rules[0]'])
})

test('inline in a server config: validated with the config, unknown fields named under authorization.', () => {
  assert.throws(
    () => parseConfig('authorization:\n  rules:\n    - match: { role: a }\n      allow: { tools: ["*"], prompt: ["x"] }\n', { env: {} }),
    (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /authorization\.rules\[0\]\.allow\.prompt/.test(p)),
  )
  assert.throws(() => parseConfig('authorization:\n  policy_file: p.yml\n  default: allow\n', { env: {} }), /authorization\.policy_file: give the policy inline \(default, rules\) or in policy_file, not both/)
  const { config } = parseConfig('authorization:\n  default: allow\n', { env: {} })
  assert.equal(config.authorization?.default, 'allow')
})

test('policySourceOf: none, inline, or policy_file relative to the config; broken YAML is named by file, line and column', async () => {
  const dir = await tempDir()
  const cfg = join(dir, 'c.yml')
  await writeFile(cfg, 'transport:\n  port: 0\n')
  assert.equal(await policySourceOf(cfg), undefined)
  await writeFile(cfg, 'authorization:\n  policy_file: ./sub/p.yml\n')
  assert.deepEqual(await policySourceOf(cfg), { file: join(dir, 'sub', 'p.yml') })
  await writeFile(cfg, 'authorization:\n  default: allow\n')
  assert.deepEqual(await policySourceOf(cfg), { file: cfg, section: 'authorization' })
  assert.equal((await loadPolicy({ file: cfg, section: 'authorization' })).default, 'allow')
  const p = join(dir, 'p.yml')
  await writeFile(p, 'rules:\n  - match: { role: a\n')
  await assert.rejects(loadPolicy({ file: p }), (err: unknown) => err instanceof ConfigError && /^.*p\.yml: line \d+, column \d+: invalid YAML/.test(err.problems[0]!))
  await assert.rejects(loadPolicy({ file: join(dir, 'missing.yml') }), /missing\.yml: invalid policy:\n {2}no such file/)
})

test('inline policy in a config file: an edit is live within a second; a broken edit is refused (audited with file and path), the last good stays', async () => {
  const dir = await tempDir()
  const cfg = join(dir, 'server.yml')
  const text = (tools: string) => `transport:\n  port: 0\nauthorization:\n  rules:\n    - match: { role: reader }\n      allow: { ${tools} }\n`
  await writeFile(cfg, text('tools: ["a"]'))
  const events: Array<{ event: string; fields: Record<string, unknown> }> = []
  const holder = (await startPolicyFromConfig(cfg, { log: (event, fields) => events.push({ event, fields }) }))!
  try {
    assert.equal(holder.decide(who(), { kind: 'tool', name: 'b' }).allowed, false)
    await writeFile(cfg, text('tools: ["a", "b"]'))
    const t0 = Date.now()
    while (!holder.decide(who(), { kind: 'tool', name: 'b' }).allowed && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10))
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`)
    assert.deepEqual(events.at(-1), { event: 'authz.reload', fields: { path: cfg, rules: 1, default: 'deny' } })
    await writeFile(cfg, text('toolz: ["c"]'))
    const t1 = Date.now()
    while (!events.some((e) => e.event === 'authz.reload_failed') && Date.now() - t1 < 5000) await new Promise((r) => setTimeout(r, 10))
    const failed = events.find((e) => e.event === 'authz.reload_failed')!
    assert.equal(failed.fields.path, cfg)
    assert.equal(failed.fields.reason, `${cfg}: authorization.rules[0].allow.toolz: unknown field (did you mean "tools"?); keeping the last good policy`)
    assert.equal(holder.decide(who(), { kind: 'tool', name: 'b' }).allowed, true)
    assert.equal(holder.decide(who(), { kind: 'tool', name: 'c' }).allowed, false)
  } finally {
    holder.close()
  }
})

test('an empty policy file is refused, and a hot reload that catches a save half done keeps the last good policy', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'authz-empty-'))
  try {
    const file = join(dir, 'policy.yml')
    await writeFile(file, '')
    await assert.rejects(loadPolicy({ file }), (err: unknown) => err instanceof ConfigError && /the file is empty: a policy needs at least `default: deny`/.test(err.problems[0]!))
    const config = join(dir, 'server_config.yml')
    await writeFile(config, '')
    await assert.rejects(loadPolicy({ file: config, section: 'authorization' }), (err: unknown) => err instanceof ConfigError && /the file is empty; a file caught mid-save/.test(err.problems[0]!))
    await writeFile(config, 'transport:\n  port: 8443\n')
    await assert.rejects(loadPolicy({ file: config, section: 'authorization' }), (err: unknown) => err instanceof ConfigError && /authorization: the section is gone; removing it needs a restart/.test(err.problems[0]!))
    await writeFile(file, 'default: allow\n')
    const errors: ConfigError[] = []
    const holder = await watchPolicy({ file }, { onError: (e) => errors.push(e), pollIntervalMs: 60_000 })
    try {
      // An editor's truncate-then-write, seen between the two steps.
      await writeFile(file, '')
      await holder.check()
      assert.equal(holder.current.default, 'allow', 'the truncated file did not replace the policy')
      assert.equal(errors.length, 1)
      await writeFile(file, 'default: deny\n')
      await holder.check()
      assert.equal(holder.current.default, 'deny', 'the completed save is in force')
    } finally {
      holder.close()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
