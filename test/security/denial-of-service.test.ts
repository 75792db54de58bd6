/**
 * Denial of service on the MCP endpoint: what a caller can make it buffer or wait for. Bodies over
 * the cap (declared or streamed) are refused before any handler runs; a made-up token is refused
 * before its body is read; a client that goes away aborts the handler's request.signal.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as net from 'node:net'
import { MCP_BODY, send, sleep } from './helpers/loopback-http.js'
import { sessionSetup } from './helpers/mcp-session.js'
import { fetchFront } from './helpers/sandbox-servers.js'

/**
 * Writes `request` (raw HTTP, its body possibly unfinished) on a new connection and resolves the
 * response head as soon as it arrives, without sending anything more: 'closed', 'error' or
 * 'no answer' (4 s) otherwise.
 */
function responseHead(port: number, request: string): Promise<string> {
  return new Promise<string>((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port })
    let data = ''
    sock.on('data', (d: Buffer) => {
      data += d.toString()
      if (data.includes('\r\n\r\n')) {
        resolve(data)
        sock.destroy()
      }
    })
    sock.on('error', () => resolve('error'))
    sock.on('close', () => resolve(data || 'closed'))
    sock.write(request)
    setTimeout(() => {
      resolve('no answer')
      sock.destroy()
    }, 4000).unref()
  })
}

// From the red-team round 2 (held).
test('oversized bodies (declared or streamed) are 413 and reach nothing; a client that goes away aborts request.signal', async () => {
  let aborted = 0
  let started = 0
  const s = await sessionSetup({
    fetchHandler: (request) => {
      started++
      return new Promise<Response>((resolve) => {
        request.signal.addEventListener('abort', () => {
          aborted++
          resolve(new Response(null, { status: 499 }))
        })
      })
    },
  })
  const big = 'x'.repeat(4 * 1024 * 1024 + 1)
  const declared = await send(s.to, { body: big, headers: s.headers(s.proof({ body: big })) })
  assert.equal(declared.status, 413, declared.text)
  const streamed = await send(s.to, { body: big, chunked: true, headers: s.headers(s.proof({ body: big })) })
  assert.ok(streamed.status === 413 || String(streamed.status).startsWith('error'), String(streamed.status))
  assert.equal(started, 0)
  // A client that sends a valid request and hangs up while the handler waits.
  const sock = net.connect({ host: '127.0.0.1', port: s.port })
  await new Promise<void>((r) => sock.once('connect', () => r()))
  const proof = s.proof()
  sock.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(MCP_BODY)}\r\nAuthorization: Bearer ${s.session.token}\r\nMCP-PKI-Proof: ${proof}\r\n\r\n${MCP_BODY}`)
  for (let i = 0; i < 100 && started === 0; i++) await sleep(20)
  assert.equal(started, 1)
  sock.destroy()
  for (let i = 0; i < 100 && aborted === 0; i++) await sleep(20)
  assert.equal(aborted, 1)
})

// From the red-team round 2, finding 5 (fixed).
test('a stranger with a made-up bearer token cannot make the MCP endpoint wait for (and buffer) a 4 MiB body', async () => {
  const s = await sessionSetup()
  const bogus = `Bearer ${'A'.repeat(174)}`
  // Headers declare a 4 MiB body; only 1 KiB is ever sent. The token is checked first, so the
  // answer comes without the rest of the body.
  const answer = responseHead(s.port, `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${4 * 1024 * 1024}\r\nAuthorization: ${bogus}\r\nMCP-PKI-Proof: ${s.proof()}\r\n\r\n${'x'.repeat(1024)}`)
  assert.match(await answer, /^HTTP\/1\.1 401 /)
  // The same through fetchHandler / verifyWebRequest (fetch-native runtimes): a body that never ends.
  const handle = s.mcpAuth.fetchHandler(() => Response.json({ reached: true }))
  const port = await fetchFront(handle)
  const r = await responseHead(port, `POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nAuthorization: ${bogus}\r\n\r\n400\r\n${'x'.repeat(1024)}\r\n`)
  assert.match(r, /^HTTP\/1\.1 401 /)
  // An honest request still works where its session was made; a fetch front on another port (no
  // socket to check the audience against, no auth.audience) refuses the session (mcp-pki/2: a
  // session is checked against its audience on every request, failing closed without one).
  assert.equal((await send(s.to, { body: MCP_BODY, headers: s.headers(s.proof()) })).status, 200)
  const viaFetch = await send({ port }, { body: MCP_BODY, headers: s.headers(s.proof()) })
  assert.equal(viaFetch.status, 401, viaFetch.text)
  assert.match(viaFetch.text, /session_invalid/)
})
