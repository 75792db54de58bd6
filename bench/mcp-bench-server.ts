/**
 * The tools/call benchmarks' server process, both ends: the parent forks a bench file with
 * `--serve`, handing it the server's key seed and the client's public key in the environment; the
 * child builds the authenticated MCP endpoint from them (bench/mcp-tools-call.ts,
 * tools-call-floor.ts, tools-call-split.ts).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { Allowlist } from '../src/allowlist/allowlist.js'
import { b64u, fromB64u } from '../src/internal/bytes.js'
import { keyPairFromPrivateKey, privateKeyFromSeed, privateKeySeed, type Ed25519KeyPair } from '../src/keys/key-pair.js'
import { createMcpAuth, type McpAuth } from '../src/mcp/server.js'
import { InMemoryNonceStore } from '../src/nonce/memory-nonce-store.js'
import { createAuthService } from '../src/transport/auth-service.js'
import { TS_LOADER } from './lib.js'

export interface BenchServer {
  child: ChildProcess
  /** http://127.0.0.1:<port> of the child's server. */
  origin: string
}

/** Forks `script --serve` and waits for the port it reports. `nodeArgs`: extra node flags (profiling). */
export async function forkBenchServer(script: string, keys: { server: Ed25519KeyPair; client: Ed25519KeyPair }, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<BenchServer> {
  const child = fork(script, ['--serve'], {
    execArgv: [...TS_LOADER, ...nodeArgs],
    env: { ...process.env, BENCH_SERVER_SEED: b64u(privateKeySeed(keys.server.privateKey)), BENCH_CLIENT_PUB: b64u(keys.client.publicKeyRaw), ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port))
    child.once('exit', (code) => reject(new Error(`bench server ${script} exited with ${code}`)))
  })
  return { child, origin: `http://127.0.0.1:${port}` }
}

/** In the forked child: createMcpAuth for the server key and allowlisted client of the environment. */
export function benchMcpAuth(): McpAuth {
  const server = keyPairFromPrivateKey(privateKeyFromSeed(fromB64u(process.env.BENCH_SERVER_SEED!)!))
  const allowlist = new Allowlist()
  allowlist.add({ publicKeyRaw: fromB64u(process.env.BENCH_CLIENT_PUB!)!, metadata: { role: 'bench' } })
  return createMcpAuth(createAuthService({ keyPair: server, allowlist, nonceStore: new InMemoryNonceStore({ maxEntries: 1_000_000 }) }))
}

/** BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/p" profiles the server process. */
export function serverNodeArgs(): string[] {
  return (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean)
}
