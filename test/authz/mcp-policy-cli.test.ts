/** mcp-policy (the built bin): exit codes, stdout and stderr of validate and explain. */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, before, test } from 'node:test'
import { createSandbox, type Sandbox } from '../../src/server/sandbox.js'

const BIN = resolve(import.meta.dirname, '..', '..', 'dist', 'bin', 'mcp-policy.js')
let sb: Sandbox
before(async () => {
  sb = await createSandbox(await mkdtemp(join(tmpdir(), 'mcp-policy-cli-')), { clientMetadata: { role: 'reader', org: 'acme', team: 'blue' } })
})
after(() => rm(sb.dir, { recursive: true, force: true }))

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [BIN, ...args], { cwd: sb.dir }, (err, stdout, stderr) => res({ code: err === null ? 0 : Number(err.code), stdout, stderr }))
  })
}

test('without an authorization section: a usage error with a hint', async () => {
  const r = await run(['validate', '--config', sb.serverConfigPath])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /has no authorization: section\nhint: add one \(docs\/authorization\.md\) or name a policy file with --policy/)
})

test('validate: a policy file named by the config; problems name file and path (exit 1)', async () => {
  await appendFile(sb.serverConfigPath, 'authorization:\n  policy_file: ./policy.yml\n')
  const policy = join(sb.dir, 'policy.yml')
  await writeFile(policy, 'rules:\n  - match: { metadata: { team: blue } }\n    allow: { tools: ["t_*"] }\n  - match: { role: reader }\n    deny: { prompts: [secret], tool: [x] }\n')
  let r = await run(['validate', '--config', sb.serverConfigPath])
  assert.equal(r.code, 1)
  assert.equal(r.stdout, '')
  assert.match(r.stderr, /policy\.yml: invalid policy:\n {2}rules\[1\]\.deny\.tool: unknown field \(did you mean "tools"\?\)/)

  await writeFile(policy, 'rules:\n  - match: { metadata: { team: blue } }\n    allow: { tools: ["t_*"] }\n  - name: no-secrets\n    match: { role: reader }\n    deny: { prompts: [secret] }\n')
  r = await run(['validate', '--config', sb.serverConfigPath])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout, `ok: ${policy}: 2 rules, default deny\n`)

  r = await run(['explain', '--config', sb.serverConfigPath, '--fingerprint', sb.clientKey.fingerprint, '--tool', 't_1', '--json'])
  assert.equal(r.code, 0)
  assert.deepEqual(JSON.parse(r.stdout), { decision: 'allow', rule: 'rules[0]', fingerprint: sb.clientKey.fingerprint, kind: 'tool', name: 't_1' })
  r = await run(['explain', '--config', sb.serverConfigPath, '--fingerprint', sb.clientKey.fingerprint.slice(0, 12), '--prompt', 'secret'])
  assert.equal(r.code, 3)
  assert.match(r.stdout, /^deny: prompt "secret" for [0-9a-f]{16}… \(role reader, org acme\): rule "no-secrets"\n$/)
  r = await run(['explain', '--config', sb.serverConfigPath, '--fingerprint', 'f'.repeat(64), '--tool', 't_1'])
  assert.equal(r.code, 3)
  assert.match(r.stdout, /is not on the allowlist/)
  r = await run(['explain', '--config', sb.serverConfigPath, '--fingerprint', sb.clientKey.fingerprint, '--tool', 'a', '--prompt', 'b'])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /give exactly one of --tool, --resource and --prompt/)
})
