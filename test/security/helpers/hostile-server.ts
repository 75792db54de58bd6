/** A hostile HTTP server for client-side tests, and the error the client ends with against it. */
import assert from 'node:assert/strict'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { AuthError } from '../../../src/errors.js'
import { generateKeyPair } from '../../../src/keys/key-pair.js'
import { authenticate } from '../../../src/transport/http-client.js'
import { onCleanup } from './cleanup.js'

/** Serves `handler` on 127.0.0.1; resolves its /auth URL. */
export async function hostile(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler)
  onCleanup(async () => {
    server.closeAllConnections()
    await new Promise<void>((r) => server.close(() => r()))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`
}

/** The AuthError `authenticate` fails with at `url` (the test fails if it succeeds). */
export async function failureOf(url: string): Promise<AuthError> {
  try {
    await authenticate({ url, keyPair: generateKeyPair(), serverTrust: () => ({}), timeoutMs: 10_000, retryAttempts: 0 })
  } catch (err) {
    assert.ok(err instanceof AuthError, String(err))
    return err
  }
  assert.fail('authenticate succeeded against a hostile server')
}
