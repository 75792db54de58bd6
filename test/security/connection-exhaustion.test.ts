/**
 * Connection exhaustion: idle and slowloris connections from many addresses cannot fill the
 * connection table against legitimate clients. When the table is full the connection idle the
 * longest gives way; the per-address cap still holds; a connection serving a request is never
 * evicted. Slow senders told 408, silent sockets and refused WebSocket upgrades let go of their
 * slot even when the peer keeps its half-open socket and goes on sending.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import * as http from 'node:http'
import * as net from 'node:net'
import type { AddressInfo } from 'node:net'
import { createServerTrust } from '../../src/handshake/client-handshake.js'
import { authenticate } from '../../src/transport/http-client.js'
import { createAuthService } from '../../src/transport/auth-service.js'
import { createAuthHttpServer, type AuthHttpServer } from '../../src/transport/http-server.js'
import { guardConnections } from '../../src/transport/connection-guard.js'
import { createAuthWebSocketServer, type AuthWebSocketServer } from '../../src/transport/ws-server.js'
import { makeParties, TestNonceStore } from '../helpers/fixtures.js'
import { holdConnections } from '../helpers/connection-attack.js'
import { honestHandshake } from './helpers/auth-endpoint.js'
import { onCleanup } from './helpers/cleanup.js'
import { sleep, waitFor } from './helpers/loopback-http.js'
import { startServer } from './helpers/sandbox-servers.js'

const cleanups: Array<() => unknown> = []
after(async () => {
  for (const c of cleanups.reverse()) await c()
})

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

// ------------------------------------------------------------------ slow senders and refused upgrades

const AUD = 'http://mcp.rt4.test'

/** createAuthHttpServer with a real service: timeout 1 s, 8 connections (2 per address). */
async function smallHttpServer(): Promise<{ http: AuthHttpServer; port: number }> {
  const p = makeParties()
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(1000), audience: AUD })
  const s = createAuthHttpServer({ service, timeoutSec: 1, maxConnections: 8 })
  const addr = await s.listen()
  onCleanup(() => s.close(100))
  return { http: s, port: addr.port }
}

/** smallHttpServer's settings with the WebSocket server attached (each test closes it itself). */
async function upgradeServer(): Promise<{ s: AuthHttpServer; ws: AuthWebSocketServer; port: number }> {
  const p = makeParties()
  const service = createAuthService({ keyPair: p.server, allowlist: p.serverAllowlist, nonceStore: new TestNonceStore(1000), audience: AUD })
  const s = createAuthHttpServer({ service, timeoutSec: 1, maxConnections: 8 })
  const ws = createAuthWebSocketServer({ service })
  ws.attach(s.server)
  const { port } = await s.listen()
  return { s, ws, port }
}

/** GET /health from `localAddress`: the status, or the error. */
function health(port: number, localAddress: string): Promise<number | string> {
  return new Promise((done) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/health', localAddress, agent: false }, (res) => {
      res.resume()
      res.on('end', () => done(res.statusCode ?? 0))
    })
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')))
    req.on('error', (e: NodeJS.ErrnoException) => done(`error ${e.code ?? e.message}`))
    req.end()
  })
}

interface SlowPeer {
  /** The status line the server answered with, once it did. */
  status(): string | undefined
  closed(): boolean
  stop(): void
}

/**
 * A half-open client (it keeps its sending side open after the server's FIN) that writes `first`,
 * then one byte of `drip` every 300 ms, whatever the server answers.
 */
async function slowPeer(port: number, localAddress: string, first: string, drip: string): Promise<SlowPeer> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true })
  await new Promise<void>((r, j) => socket.once('connect', () => r()).once('error', j))
  let text = ''
  let closed = false
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')))
  socket.on('error', () => undefined)
  socket.on('close', () => (closed = true))
  socket.write(first)
  let i = 0
  const timer = setInterval(() => {
    if (!socket.destroyed && socket.writable) socket.write(drip[i++ % drip.length]!)
  }, 300)
  const stop = (): void => {
    clearInterval(timer)
    socket.destroy()
  }
  onCleanup(stop)
  return { status: () => /^HTTP\/1\.1 (\d{3}[^\r]*)/.exec(text)?.[1], closed: () => closed, stop }
}

// From the red-team, handshake server (finding, fixed).
test(
  'idle TCP connections held from one address do not lock clients at other addresses out',
  async () => {
    const { sb, port } = await startServer({ transport: { max_connections: 5 } })
    assert.equal(await honestHandshake(sb, port), 'ok', 'baseline')
    // The attacker, from another loopback address, keeps max_connections sockets open, sending
    // nothing, and reopens any the server closes. Bounded: 5 sockets, ~2.5 s.
    const sockets = new Set<net.Socket>()
    let attacking = true
    const open = (): void => {
      const s = net.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.2' })
      s.on('error', () => undefined)
      s.on('close', () => {
        sockets.delete(s)
        if (attacking) open()
      })
      sockets.add(s)
    }
    for (let i = 0; i < 5; i++) open()
    await sleep(200)
    const outcomes: string[] = []
    try {
      for (let i = 0; i < 8; i++) {
        outcomes.push(await honestHandshake(sb, port))
        await sleep(250)
      }
    } finally {
      attacking = false
      for (const s of sockets) s.destroy()
    }
    const ok = outcomes.filter((o) => o === 'ok').length
    assert.ok(ok >= 6, `an honest client from another address is served while 5 idle sockets are held: ${JSON.stringify(outcomes)}`)
  },
)

// From the red-team round 4, finding 5 (fixed).
test('a slow sender told 408 (headers or body too slow) loses its connection slot even if it goes on trickling bytes into its half-open socket', async () => {
  const { port } = await smallHttpServer()
  const peers = {
    // headers complete, body arriving 1 byte per 300 ms: request timeout
    slowBody: await Promise.all([0, 1].map(() => slowPeer(port, '127.0.0.2', 'POST /auth HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n{', 'a'))),
    // headers never complete: headers timeout
    slowHeaders: await Promise.all([0, 1].map(() => slowPeer(port, '127.0.0.3', 'POST /auth HTTP/1.1\r\nhost: x\r\n', 'x-a: b\r\n'))),
    // not HTTP: 400 at once
    garbage: await Promise.all([0, 1].map(() => slowPeer(port, '127.0.0.4', 'HELLO THERE\r\n\r\n', 'zz'))),
  }
  const expected: Record<keyof typeof peers, RegExp> = { slowBody: /^408/, slowHeaders: /^408/, garbage: /^400/ }
  for (const [kind, list] of Object.entries(peers) as Array<[keyof typeof peers, SlowPeer[]]>) {
    await waitFor(() => list.every((p) => p.status() !== undefined || p.closed()), `${kind}: answered`, 8000)
    for (const p of list) assert.match(p.status() ?? 'closed without a status', expected[kind], kind)
  }
  // The server must let go of them even though they keep sending.
  for (const [kind, list] of Object.entries(peers)) await waitFor(() => list.every((p) => p.closed()), `${kind}: connections closed by the server`, 6000)
  for (const address of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) assert.equal(await health(port, address), 200, `${address} can connect again`)
})

// From the red-team round 4 (held).
test('slowloris on headers and on the body, and silent sockets, from two addresses: each cut off (408, or closed when silent), extra sockets over the per-address cap refused, and a third address served all along', async () => {
  const { port } = await smallHttpServer()
  const t0 = Date.now()
  const attackers = [
    ...(await Promise.all([0, 1].map(() => slowPeer(port, '127.0.0.5', 'GET /health HTTP/1.1\r\n', 'x-slow: 1\r\n')))),
  ]
  const silent = await Promise.all(
    [0, 1].map(async () => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.6' })
      let closedAt = 0
      s.on('error', () => undefined)
      s.on('close', () => (closedAt = Date.now()))
      await new Promise<void>((r) => s.once('connect', () => r()))
      onCleanup(() => {
        s.destroy()
      })
      return { closedAt: () => closedAt }
    }),
  )
  // A third socket from 127.0.0.6 is over its cap: closed at once, before it can send anything.
  assert.match(String(await health(port, '127.0.0.6')), /^error /)
  const served: Array<number | string> = []
  while (Date.now() - t0 < 2500) {
    served.push(await health(port, '127.0.0.7'))
    await sleep(100)
  }
  assert.ok(served.length >= 3 && served.every((s) => s === 200), `the third address: ${served.join(',')}`)
  // Generous bounds: on a loaded 2-core CI host the 5 s idle rule has been seen to fire late; what
  // is asserted is that every one is cut off while the third address is served.
  await waitFor(() => attackers.every((a) => a.status() !== undefined), 'slow headers answered', 20_000)
  for (const a of attackers) assert.match(a.status()!, /^408/)
  await waitFor(() => silent.every((s) => s.closedAt() > 0), 'silent sockets closed', 20_000)
  for (const s of silent) assert.ok(s.closedAt() - t0 < 20_000)
  await waitFor(() => attackers.every((a) => a.closed()), 'slow senders disconnected', 20_000)
  assert.equal(await health(port, '127.0.0.5'), 200)
  assert.equal(await health(port, '127.0.0.6'), 200)
})

// From the red-team round 4, finding 6 (fixed).
test('a refused WebSocket upgrade (404 for another path) is closed, so a half-open peer that keeps sending does not hold its connection slot', async (t) => {
  const { s, ws, port } = await upgradeServer()
  const upgrade = 'GET /not-ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n'
  const peers = await Promise.all([0, 1].map(() => slowPeer(port, '127.0.0.8', upgrade, 'z')))
  t.after(async () => {
    for (const x of peers) x.stop()
    await ws.close()
    await Promise.race([s.close(100), sleep(2000)])
  })
  await waitFor(() => peers.every((x) => x.status() !== undefined), 'refused', 5000)
  for (const x of peers) assert.match(x.status()!, /^404/)
  await waitFor(() => peers.every((x) => x.closed()), 'closed by the server', 6000)
  assert.equal(await health(port, '127.0.0.8'), 200)
})

// From the red-team round 4, finding 6 (fixed).
test('a peer that sends a few bytes after its WebSocket upgrade was refused and then leaves does not keep the server socket open: the slot is freed and a graceful close() ends', async (t) => {
  const { s, ws, port } = await upgradeServer()
  let closedServer = false
  t.after(async () => {
    await ws.close()
    if (!closedServer) s.server.close()
  })
  for (let i = 0; i < 2; i++) {
    const c = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.9', allowHalfOpen: true })
    c.on('error', () => undefined)
    c.on('data', () => undefined)
    c.write('GET /not-ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n')
    await sleep(200)
    c.write('zzz')
    await sleep(200)
    c.destroy()
  }
  await sleep(1500)
  const open = await new Promise<number>((r) => s.server.getConnections((_e, n) => r(n)))
  const closing = s.close(100).then(() => (closedServer = true))
  await Promise.race([closing, sleep(5000)])
  assert.equal(open, 0, 'server sockets left open by peers that are gone')
  assert.equal(closedServer, true, 'close() did not end within 5 s')
})
