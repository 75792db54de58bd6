// Shared by test/integration/redis-*.test.ts: a private redis-server on a free loopback port,
// key-prefix cleanup, child-process runner. Not a test file itself.
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import { snippetArgs } from '../helpers/node-snippet.js'

export const REDIS_URL = 'redis://127.0.0.1:6379'
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))

export function uniquePrefix(tag: string): string {
  return `mcp-pki-test:${tag}:${process.pid}:${randomBytes(4).toString('hex')}:`
}

export async function deletePrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 })
  try {
    let cursor = '0'
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await r.del(...keys)
    } while (cursor !== '0')
  } finally {
    await r.quit()
  }
}

export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

export interface PrivateRedis {
  url: string
  port: number
  proc: ChildProcess
  stop(): Promise<void>
}

/** Starts `redis-server` on a free loopback port, no persistence. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort()
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  const deadline = Date.now() + 5000
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => undefined)
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      break
    } catch {
      probe.disconnect()
      if (Date.now() > deadline) {
        proc.kill()
        throw new Error('redis-server did not start')
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    proc,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      await exited
    },
  }
}

/** Runs an ESM snippet in a child process (see snippetArgs); resolves with its stdout. */
export async function runChild(code: string, env: Record<string, string> = {}): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, snippetArgs(code), {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.once('error', reject)
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`))))
  })
}
