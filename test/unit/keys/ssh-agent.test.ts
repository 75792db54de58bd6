import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { verify } from 'node:crypto'
import { formatOpenSshPublicKey, writeOpenSshPrivateKeyFile } from '../../../src/keys/key-file.js'
import { generateKeyPair, publicKeyFromRaw } from '../../../src/keys/key-pair.js'
import { createSshAgentSigner, listSshAgentIdentities, SshAgentError } from '../../../src/keys/ssh-agent.js'
import { sshString, sshU32 } from '../../../src/keys/ssh-wire.js'
import { rawKeyOfPub, sshAdd, sshKeygen, sshKeygenKey, startSshAgent, type RunningAgent } from '../../helpers/openssh.js'
import { snippetArgs, srcModule } from '../../helpers/node-snippet.js'

let dir: string
let agent: RunningAgent
let keyA: string
let keyB: string
let rawA: Buffer
let rawB: Buffer

async function askpass(name: string, body: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, `#!/bin/sh\n${body}\n`)
  await chmod(path, 0o755)
  return path
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcp-agent-'))
  agent = await startSshAgent(dir)
  keyA = sshKeygenKey(dir, 'alice')
  keyB = sshKeygenKey(dir, 'bob')
  rawA = rawKeyOfPub(`${keyA}.pub`)
  rawB = rawKeyOfPub(`${keyB}.pub`)
  sshKeygen(dir, ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', 'rsa'])
  // An RSA key first, so "the first ed25519 key" is not simply the first key.
  for (const k of [join(dir, 'rsa'), keyA, keyB]) {
    const r = await sshAdd(agent, [k])
    assert.equal(r.code, 0, r.stderr)
  }
})
after(async () => {
  await agent?.stop()
  await rm(dir, { recursive: true, force: true })
})

const verifies = (raw: Uint8Array, data: Uint8Array, sig: Uint8Array): boolean => verify(null, data, publicKeyFromRaw(raw), sig)

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<SshAgentError> {
  try {
    await p
  } catch (err) {
    assert.ok(err instanceof SshAgentError, `expected SshAgentError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    if (message) assert.match(err.message, message)
    if (code !== 'agent_protocol_error') assert.ok(err.hint && err.hint.length > 0, 'a hint saying what to do')
    return err
  }
  assert.fail(`expected ${code}`)
}

describe('ssh-agent signer against the real ssh-agent', () => {
  test('lists identities: rsa and two ed25519 keys, with comments', async () => {
    const ids = await listSshAgentIdentities({ socketPath: agent.socket })
    assert.deepEqual(ids.map((i) => i.type), ['ssh-rsa', 'ssh-ed25519', 'ssh-ed25519'])
    assert.equal(ids[0]!.ed25519PublicKey, undefined)
    assert.deepEqual(ids[2]!.ed25519PublicKey, rawB)
    assert.equal(ids[1]!.comment, 'alice')
  })

  test('picks the key named by publicKey and signs; the signature verifies with that key', async () => {
    const signer = await createSshAgentSigner({ socketPath: agent.socket, publicKey: rawB })
    assert.deepEqual(signer.publicKey, rawB)
    const data = Buffer.from('mcp-pki/2 transcript bytes')
    const sig = await signer.sign(data)
    assert.equal(sig.length, 64)
    assert.ok(verifies(rawB, data, sig))
    assert.ok(!verifies(rawA, data, sig))
  })

  test('without publicKey: the first ed25519 key, found through $SSH_AUTH_SOCK', async () => {
    const saved = process.env.SSH_AUTH_SOCK
    process.env.SSH_AUTH_SOCK = agent.socket
    try {
      const signer = await createSshAgentSigner()
      assert.deepEqual(signer.publicKey, rawA)
      assert.ok(verifies(rawA, Buffer.from('x'), await signer.sign(Buffer.from('x'))))
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK
      else process.env.SSH_AUTH_SOCK = saved
    }
  })

  test('a key written by mcp-keygen (openssh) with a certificate beside it: ssh-add loads both, the signer reports the certificate', async () => {
    const pair = generateKeyPair()
    const path = join(dir, 'mcp_client')
    await writeOpenSshPrivateKeyFile(path, pair.privateKey, { comment: 'mcp' })
    await writeFile(`${path}.pub`, `${formatOpenSshPublicKey(pair.publicKeyRaw, 'mcp')}\n`)
    sshKeygenKey(dir, 'ca')
    sshKeygen(dir, ['-q', '-s', 'ca', '-I', 'mcp-client', '-n', 'alice', '-V', '+1h', `${path}.pub`])
    const r = await sshAdd(agent, [path])
    assert.equal(r.code, 0, r.stderr)
    const signer = await createSshAgentSigner({ socketPath: agent.socket, publicKey: pair.publicKeyRaw })
    assert.ok(signer.certificate, 'the agent holds the certificate too')
    assert.ok(verifies(pair.publicKeyRaw, Buffer.from('y'), await signer.sign(Buffer.from('y'))))
    assert.equal((await sshAdd(agent, ['-d', path])).code, 0)
  })

  test('a key that is not in the agent: agent_key_not_found naming its fingerprint', async () => {
    const stranger = generateKeyPair()
    await rejectsWith(createSshAgentSigner({ socketPath: agent.socket, publicKey: stranger.publicKeyRaw }), 'agent_key_not_found', new RegExp(stranger.fingerprint))
  })

  test('key removed after the signer was made: agent_refused', async () => {
    const signer = await createSshAgentSigner({ socketPath: agent.socket, publicKey: rawB })
    assert.equal((await sshAdd(agent, ['-d', `${keyB}.pub`])).code, 0)
    try {
      await rejectsWith(signer.sign(Buffer.from('z')), 'agent_refused', /refused to sign/)
    } finally {
      assert.equal((await sshAdd(agent, [keyB])).code, 0)
    }
  })

  test('locked agent (ssh-add -x): signing is refused, listing shows no keys, unlocking restores both', async () => {
    const signer = await createSshAgentSigner({ socketPath: agent.socket, publicKey: rawA })
    const pass = { SSH_ASKPASS: await askpass('lockpass', 'echo correct-horse'), SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' }
    const locked = await sshAdd(agent, ['-x'], pass)
    assert.equal(locked.code, 0, locked.stderr)
    try {
      await rejectsWith(signer.sign(Buffer.from('z')), 'agent_refused')
      const err = await rejectsWith(createSshAgentSigner({ socketPath: agent.socket, publicKey: rawA }), 'agent_key_not_found', /no keys \(or is locked\)/)
      assert.match(err.hint!, /ssh-add -X/)
    } finally {
      assert.equal((await sshAdd(agent, ['-X'], pass)).code, 0)
    }
    assert.ok(verifies(rawA, Buffer.from('z'), await signer.sign(Buffer.from('z'))))
  })
})

describe('ssh-agent confirmation (ssh-add -c)', () => {
  let confirmAgent: RunningAgent
  let answerFile: string
  before(async () => {
    answerFile = join(dir, 'answer')
    const script = await askpass('confirm', `exec sh "${join(dir, 'answer')}"`)
    confirmAgent = await startSshAgent(await mkdtemp(join(dir, 'c-')), { SSH_ASKPASS: script, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' })
    assert.equal((await sshAdd(confirmAgent, ['-c', keyA])).code, 0)
  })
  after(async () => {
    await confirmAgent?.stop()
  })

  test('confirmation denied: agent_refused; confirmation given: a valid signature', async () => {
    const signer = await createSshAgentSigner({ socketPath: confirmAgent.socket })
    await writeFile(answerFile, 'exit 1\n')
    await rejectsWith(signer.sign(Buffer.from('deny me')), 'agent_refused', /refused to sign/)
    await writeFile(answerFile, 'echo yes\n')
    assert.ok(verifies(rawA, Buffer.from('allow me'), await signer.sign(Buffer.from('allow me'))))
  })
})

describe('ssh-agent failures before any key', () => {
  test('no SSH_AUTH_SOCK: agent_not_configured', async () => {
    const saved = process.env.SSH_AUTH_SOCK
    delete process.env.SSH_AUTH_SOCK
    try {
      await rejectsWith(createSshAgentSigner(), 'agent_not_configured', /SSH_AUTH_SOCK is not set/)
    } finally {
      if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved
    }
  })

  test('a socket nobody listens on: agent_unreachable', async () => {
    await rejectsWith(createSshAgentSigner({ socketPath: join(dir, 'nothing.sock') }), 'agent_unreachable', /no such socket/)
  })

  async function fakeAgent(onRequest: (socket: Socket) => void): Promise<{ path: string; server: Server }> {
    const path = join(dir, `fake-${Math.random().toString(36).slice(2)}.sock`)
    const server = createServer((s) => s.once('data', () => onRequest(s)))
    await new Promise<void>((r) => server.listen(path, r))
    return { path, server }
  }

  test('an agent that never answers: agent_timeout', async () => {
    const { path, server } = await fakeAgent(() => {})
    try {
      await rejectsWith(createSshAgentSigner({ socketPath: path, timeoutMs: 200 }), 'agent_timeout', /did not answer within 200 ms/)
    } finally {
      server.close()
    }
  })

  test('an oversized reply is refused from its length prefix', async () => {
    const { path, server } = await fakeAgent((s) => s.write(sshU32(64 * 1024 * 1024)))
    try {
      await rejectsWith(createSshAgentSigner({ socketPath: path }), 'agent_protocol_error', /limit/)
    } finally {
      server.close()
    }
  })

  test('an identities answer with a lying count, or a bad signature, is a protocol error', async () => {
    const pair = generateKeyPair()
    const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(pair.publicKeyRaw)])
    const frame = (b: Buffer): Buffer => Buffer.concat([sshU32(b.length), b])
    const lying = await fakeAgent((s) => s.write(frame(Buffer.concat([Buffer.from([12]), sshU32(5), sshString(blob), sshString('c')]))))
    try {
      await rejectsWith(createSshAgentSigner({ socketPath: lying.path }), 'agent_protocol_error', /truncated/)
    } finally {
      lying.server.close()
    }
    let calls = 0
    const liar = await fakeAgent((s) => {
      calls++
      if (calls === 1) s.write(frame(Buffer.concat([Buffer.from([12]), sshU32(1), sshString(blob), sshString('c')])))
      else s.write(frame(Buffer.concat([Buffer.from([14]), sshString(Buffer.concat([sshString('ssh-ed25519'), sshString(Buffer.alloc(64, 3))]))])))
    })
    try {
      const signer = await createSshAgentSigner({ socketPath: liar.path })
      await rejectsWith(signer.sign(Buffer.from('q')), 'agent_protocol_error', /does not verify/)
    } finally {
      liar.server.close()
    }
  })
})

describe('keepAlive: one connection kept open for many signatures', () => {
  test('40 signatures at once over one connection, answered in order: each verifies for its own data', async () => {
    const signer = await createSshAgentSigner({ socketPath: agent.socket, publicKey: rawA, keepAlive: true })
    const data = Array.from({ length: 40 }, (_, i) => Buffer.from(`transcript ${i}`))
    const sigs = await Promise.all(data.map((d) => signer.sign(d)))
    sigs.forEach((sig, i) => assert.ok(verifies(rawA, data[i]!, sig), `signature ${i}`))
  })

  test('the agent restarted between two signatures (the idle connection gone): the next one is sent again on a new connection', async () => {
    const own = await startSshAgent(await mkdtemp(join(dir, 'k-')))
    try {
      assert.equal((await sshAdd(own, [keyA])).code, 0)
      const signer = await createSshAgentSigner({ socketPath: own.socket, publicKey: rawA, keepAlive: true })
      assert.ok(verifies(rawA, Buffer.from('one'), await signer.sign(Buffer.from('one'))))
      await own.stop()
      await rejectsWith(signer.sign(Buffer.from('nobody')), 'agent_unreachable', /cannot reach the ssh-agent|closed the connection/)
      const again = await startSshAgent(dirname(own.socket))
      try {
        assert.equal((await sshAdd(again, [keyA])).code, 0)
        assert.ok(verifies(rawA, Buffer.from('two'), await signer.sign(Buffer.from('two'))))
      } finally {
        await again.stop()
      }
    } finally {
      await own.stop()
    }
  })

  test('a stalled connection times out, and the next signature opens a new one', async () => {
    const pair = generateKeyPair()
    const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(pair.publicKeyRaw)])
    const frame = (b: Buffer): Buffer => Buffer.concat([sshU32(b.length), b])
    const { sign } = await import('node:crypto')
    let connections = 0
    const path = join(dir, `stall-${Math.random().toString(36).slice(2)}.sock`)
    const sockets: Socket[] = []
    const server = createServer((s) => {
      sockets.push(s)
      connections++
      const n = connections
      s.on('data', (d: Buffer) => {
        if (d[4] === 11) s.write(frame(Buffer.concat([Buffer.from([12]), sshU32(1), sshString(blob), sshString('c')])))
        else if (n === 2) return // the signer's first connection: never answers
        else {
          // sign request: u8 13, string blob, string data, u32 flags
          const body = d.subarray(4)
          const blobLen = body.readUInt32BE(1)
          const dataLen = body.readUInt32BE(5 + blobLen)
          const data = body.subarray(9 + blobLen, 9 + blobLen + dataLen)
          const sig = sign(null, data, pair.privateKey)
          s.write(frame(Buffer.concat([Buffer.from([14]), sshString(Buffer.concat([sshString('ssh-ed25519'), sshString(sig)]))])))
        }
      })
    })
    await new Promise<void>((r) => server.listen(path, r))
    try {
      const signer = await createSshAgentSigner({ socketPath: path, keepAlive: true, timeoutMs: 300 })
      await rejectsWith(signer.sign(Buffer.from('stalled')), 'agent_timeout', /did not answer within 300 ms/)
      assert.ok(verifies(pair.publicKeyRaw, Buffer.from('fresh'), await signer.sign(Buffer.from('fresh'))))
      assert.equal(connections, 3, 'listing, the stalled connection, a new one')
    } finally {
      for (const s of sockets) s.destroy() // the signer's kept connection is still open
      server.close()
    }
  })

  test('an idle kept connection does not keep the process alive', async () => {
    const script = `
      import { createSshAgentSigner } from ${srcModule('keys/ssh-agent.js')}
      const s = await createSshAgentSigner({ socketPath: process.argv[1], keepAlive: true })
      await s.sign(Buffer.from('x'))
      console.log('signed')
    `
    const { execFile } = await import('node:child_process')
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, snippetArgs(script, [agent.socket]), { timeout: 20_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)))
    })
    assert.equal(out.trim(), 'signed')
  })
})
