/**
 * Connection exhaustion: idle and slowloris connections from many addresses cannot fill the
 * connection table against legitimate clients. When the table is full the connection idle the
 * longest gives way; the per-address cap still holds; a connection serving a request is never
 * evicted.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import * as http from 'node:http'
import * as net from 'node:net'
import type { AddressInfo } from 'node:net'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { authenticate } from '../../src/transport/http-client.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { createAuthHttpServer } from '../../src/transport/http-server.js'
import { guardConnections } from '../../src/transport/connection-guard.js'
import { makeParties, TestNonceStore } from '../helpers/fixtures.js'
import { holdConnections } from '../helpers/connection-attack.js'

const cleanups: Array<() => unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const t0 = Date.now()
  while (!(await cond())) {
    if (Date.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`)
    await sleep(20)
  }
}

const attackers = Array.from({ length: 20 }, (_, i) => `127.0.0.${10 + i}`)

test('idle and slowloris connections from 20 addresses filling the table (100, 25 per address) do not keep legitimate handshakes out', async () => {
  const p = makeParties()
  const audience = 'http://127.0.0.1'
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(10_000), audience })
  const s = createAuthHttpServer({ service, maxConnections: 100 })
  const { port } = await s.listen()
  cleanups.push(() => s.close(100))
  const attack = holdConnections(port, attackers, 25)
  cleanups.push(() => attack.stop())
  const held = (): Promise<number> => new Promise((r) => s.server.getConnections((_e, n) => r(n)))
  await waitFor(async () => (await held()) >= 100, 'the attack fills the table')

  const serverTrust = createServerTrust({ allowlist: p.clientAllowlist })
  const results = []
  for (let i = 0; i < 28; i++) {
    results.push(
      await authenticate({ url: `http://127.0.0.1:${port}/auth`, keyPair: p.client, serverTrust, audience, retryAttempts: 0, timeoutMs: 10_000 }).then(
        () => 'ok',
        (err: Error) => err.message,
      ),
    )
  }
  assert.deepEqual(
    results.filter((r) => r !== 'ok'),
    [],
    `${results.filter((r) => r === 'ok').length} of 28 legitimate handshakes succeeded`,
  )
  assert.ok((await held()) <= 100, 'the table never grows past max_connections')
})

test('the per-address cap holds and a connection serving a request is never evicted to make room', async () => {
  let release: () => void = () => undefined
  const slowAnswer = new Promise<void>((r) => (release = r))
  const server = http.createServer((req, res) => {
    if (req.url === '/slow') void slowAnswer.then(() => res.end('done'))
    else res.end('ok')
  })
  const guard = guardConnections(server, { maxConnections: 4, perAddress: 2 })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  const port = (server.address() as AddressInfo).port
  cleanups.push(() => {
    release()
    server.closeAllConnections()
    server.close()
  })
  // Two busy connections (a request each, unanswered for now) from 127.0.0.40 and 127.0.0.41.
  const busy = ['127.0.0.40', '127.0.0.41'].map(
    (localAddress) =>
      new Promise<string>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port, path: '/slow', localAddress, agent: false }, (res) => {
          let text = ''
          res.on('data', (d: Buffer) => (text += d.toString()))
          res.on('end', () => resolve(text))
        }).on('error', reject)
      }),
  )
  await waitFor(() => guard.size === 2, 'two busy connections held')
  // A third address fills the table with idle connections, then a third from it is over its cap.
  const attack = holdConnections(port, ['127.0.0.42'], 2)
  cleanups.push(() => attack.stop())
  await waitFor(() => guard.size === 4, 'table full')
  const over = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.42' })
  over.on('error', () => undefined)
  await new Promise<void>((r) => over.once('close', () => r()))
  assert.ok(guard.refused >= 1, 'over the per-address cap: refused')
  // A newcomer evicts an idle one, never a busy one.
  const get = (localAddress: string): Promise<number | string> =>
    new Promise((resolve) => {
      http.get({ host: '127.0.0.1', port, path: '/', localAddress, agent: false }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      }).on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
    })
  for (let i = 0; i < 5; i++) assert.equal(await get('127.0.0.43'), 200)
  assert.ok(guard.evicted >= 1, 'idle connections gave way')
  release()
  assert.deepEqual(await Promise.all(busy), ['done', 'done'], 'busy connections were kept')
  attack.stop()
})
