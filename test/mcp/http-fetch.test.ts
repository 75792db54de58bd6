/** The proxy's undici fetch: extra headers (the caller's win), Request objects, timeouts (issue 11.3). */
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, test } from 'node:test'
import { describeError, hintFor } from '../../src/cli/shared/hints.js'
import { createHttpFetch, type HttpFetch } from '../../src/mcp/http-fetch.js'
import { closeServer, listen } from './fixtures/harness.js'

const server = createServer((req, res) => {
  let body = ''
  req.on('data', (c: Buffer) => (body += c.toString()))
  req.on('end', () => {
    if (req.url === '/slow') return // never answers
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method, body, tenant: req.headers['x-tenant'], key: req.headers['x-key'] }))
  })
})
let origin: string
let f: HttpFetch
before(async () => {
  origin = await listen(server)
  f = await createHttpFetch({ headers: { 'x-tenant': 'acme', 'x-key': 'default' }, requestTimeoutMs: 500 })
})
after(async () => {
  await f.close()
  await closeServer(server)
})

test('extra headers are added, a header the caller sets wins, and a Request keeps its method and body', async () => {
  const a = (await (await f(`${origin}/x`, { method: 'POST', body: 'hello', headers: { 'x-key': 'mine' } })).json()) as Record<string, string>
  assert.deepEqual(a, { method: 'POST', body: 'hello', tenant: 'acme', key: 'mine' })
  const b = (await (await f(new Request(`${origin}/y`, { method: 'PUT', body: 'from-request' }))).json()) as Record<string, string>
  assert.deepEqual(b, { method: 'PUT', body: 'from-request', tenant: 'acme', key: 'default' })
})

test('--request-timeout: no reply headers within the limit rejects', async () => {
  const started = Date.now()
  await assert.rejects(f(`${origin}/slow`, { method: 'POST', body: 'x' }), (err: Error) => {
    assert.equal((err.cause as { code?: string } | undefined)?.code, 'UND_ERR_HEADERS_TIMEOUT')
    assert.match(describeError(err), /the server did not start answering within the request timeout/)
    assert.match(hintFor(err, { config: 'c.yml', publicKeyPath: 'p', url: `${origin}/auth`, mcpUrl: `${origin}/slow` }) ?? '', /--request-timeout/)
    return true
  })
  assert.ok(Date.now() - started < 10_000)
})
