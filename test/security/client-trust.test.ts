/**
 * Client trust: a hostile (or impersonated) server answers the client's handshake before the
 * client has authenticated it, so nothing it sends is trusted: its reply is size-capped, redirects
 * and non-JSON are transport errors, and a wire code only the client may decide is never taken as
 * one.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { failureOf, hostile } from './helpers/hostile-server.js'

// From the red-team, client side (finding, fixed).
test(
  'a hostile server streaming an endless reply is cut off by the client at the reply cap, not buffered',
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

// From the red-team, client side (held).
test('a server that answers with a redirect or non-JSON gets transport_error; an unknown wire code becomes internal_error, never a local decision', async () => {
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
