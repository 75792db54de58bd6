/**
 * The server's handshake through its production entry point (createAuthService().handleMessage),
 * in one process with no network: what the server spends per handshake with its key in the
 * process (`--mode keyfile`) and with its key in a real ssh-agent (`--mode agent`, keys.agent).
 *
 *   node --import tsx bench/server-signing.ts [--mode keyfile|agent [--per-request]] [--n 2000] [--runs 5] [--json]
 *
 * Figures: server wall time and CPU in its two calls per handshake (serial), and handshakes per
 * second with 1 and 10 handshakes in flight (client and server in this process, so that figure
 * includes the client's work).
 * @module
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createClientHandshake, createServerTrust } from '../src/handshake/client-handshake.js'
import { writeOpenSshPrivateKeyFile } from '../src/keys/key-file.js'
import { generateKeyPair } from '../src/keys/key-pair.js'
import { InMemoryNonceStore } from '../src/nonce/memory-nonce-store.js'
import { createAuthService, type AuthServiceOptions } from '../src/transport/auth-service.js'
import { Allowlist } from '../src/allowlist/allowlist.js'
import { cpuMicros, fmtStat, statOf, table } from './lib.js'

interface Args {
  mode: 'keyfile' | 'agent'
  perRequest: boolean
  n: number
  runs: number
  json: boolean
}

function parseArgs(argv: string[]): Args {
  const a: Args = { mode: 'keyfile', perRequest: false, n: 2000, runs: 5, json: false }
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]
    if (k === '--mode') a.mode = argv[++i] === 'agent' ? 'agent' : 'keyfile'
    else if (k === '--n') a.n = Number(argv[++i])
    else if (k === '--runs') a.runs = Number(argv[++i])
    else if (k === '--json') a.json = true
    else if (k === '--per-request') a.perRequest = true
    else throw new Error(`unknown argument ${k}`)
  }
  return a
}

async function startAgent(dir: string): Promise<{ socket: string; stop: () => void }> {
  const socket = join(dir, 'agent.sock')
  const child = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' })
  for (let i = 0; i < 300 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 10))
  return { socket, stop: () => child.kill('SIGTERM') }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  const dir = mkdtempSync(join(tmpdir(), 'mcp-bench-signing-'))
  const serverPair = generateKeyPair()
  const client = generateKeyPair()
  const allowlist = new Allowlist()
  allowlist.add({ publicKeyRaw: client.publicKeyRaw, metadata: { role: 'bench' } })
  const clientAllowlist = new Allowlist()
  clientAllowlist.add({ publicKeyRaw: serverPair.publicKeyRaw, metadata: {} })
  const nonces = new InMemoryNonceStore({ maxEntries: 10_000_000, sweepIntervalMs: 0 })
  let stopAgent = (): void => undefined
  let options: AuthServiceOptions = { keyPair: serverPair, allowlist, nonceStore: nonces }
  if (args.mode === 'agent') {
    const agent = await startAgent(dir)
    stopAgent = agent.stop
    await writeOpenSshPrivateKeyFile(join(dir, 'server'), serverPair.privateKey)
    execFileSync('ssh-add', ['-q', join(dir, 'server')], { env: { ...process.env, SSH_AUTH_SOCK: agent.socket } })
    const { createSshAgentSigner } = await import('../src/keys/ssh-agent.js')
    const { externalServerKey } = await import('../src/handshake/server-key.js')
    const { ticketKeyFrom } = await import('../src/session/ticket.js')
    // As agent-server-key.ts makes it for keys.agent (one connection kept open; --per-request: one each).
    const signer = await createSshAgentSigner({ socketPath: agent.socket, publicKey: serverPair.publicKeyRaw, timeoutMs: 5000, keepAlive: !args.perRequest })
    options = { ...options, keyPair: externalServerKey(signer), ticketKeys: [ticketKeyFrom(Buffer.alloc(32, 3))] }
  }
  const service = createAuthService(options)
  const trust = createServerTrust({ allowlist: clientAllowlist })

  const one = async (t?: { wall: number; cpu: number }): Promise<void> => {
    const c = createClientHandshake({ keyPair: client, audience: 'http://127.0.0.1:8443', serverTrust: trust })
    const m1 = c.start()
    let w0 = 0
    let c0 = 0
    if (t) [w0, c0] = [performance.now(), cpuMicros()]
    const r2 = await service.handleMessage(m1)
    if (t) [t.wall, t.cpu] = [t.wall + performance.now() - w0, t.cpu + cpuMicros() - c0]
    if (r2.status !== 200) throw new Error(`message 2: ${JSON.stringify(r2.body)}`)
    const m3 = await c.handleChallenge(r2.body)
    if (t) [w0, c0] = [performance.now(), cpuMicros()]
    const r4 = await service.handleMessage(m3)
    if (t) [t.wall, t.cpu] = [t.wall + performance.now() - w0, t.cpu + cpuMicros() - c0]
    if (r4.status !== 200) throw new Error(`message 4: ${JSON.stringify(r4.body)}`)
    c.handleComplete(r4.body)
  }
  const inFlight = async (count: number, total: number): Promise<number> => {
    let left = total
    const t0 = performance.now()
    await Promise.all(Array.from({ length: count }, async () => {
      while (left-- > 0) await one()
    }))
    return (total * 1000) / (performance.now() - t0)
  }

  for (let i = 0; i < 200; i++) await one()
  const wall: number[] = []
  const cpu: number[] = []
  const c1: number[] = []
  const c10: number[] = []
  for (let r = 0; r < args.runs; r++) {
    const t = { wall: 0, cpu: 0 }
    for (let i = 0; i < args.n; i++) await one(t)
    wall.push((t.wall * 1000) / args.n)
    cpu.push(t.cpu / args.n)
    c1.push(await inFlight(1, args.n))
    c10.push(await inFlight(10, args.n))
  }
  stopAgent()
  nonces.close()
  rmSync(dir, { recursive: true, force: true })
  const result = { mode: args.mode, n: args.n, runs: args.runs, server_wall_us: statOf(wall), server_cpu_us: statOf(cpu), handshakes_per_s_c1: statOf(c1), handshakes_per_s_c10: statOf(c10) }
  if (args.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`)
    return
  }
  process.stdout.write(
    table(`Server handshake, ${args.mode === 'agent' ? `key in ssh-agent${args.perRequest ? ', a connection per signature' : ''}` : 'key in the process'} (${args.runs} runs of ${args.n})`, ['figure', 'median [min–max]'], [
      ['server wall µs per handshake (its two calls, serial)', fmtStat(result.server_wall_us)],
      ['server CPU µs per handshake', fmtStat(result.server_cpu_us)],
      ['handshakes/s, 1 in flight (client + server here)', fmtStat(result.handshakes_per_s_c1, 0)],
      ['handshakes/s, 10 in flight (client + server here)', fmtStat(result.handshakes_per_s_c10, 0)],
    ]),
  )
}

await main()
