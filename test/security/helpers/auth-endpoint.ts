/**
 * POST /auth from outside: from a chosen loopback source address (127.0.0.x) or with a chosen Host
 * header, and the sandbox client's whole handshake reported as 'ok' or what refused it.
 */
import * as http from 'node:http'
import { createClientHandshake } from '../../../src/handshake/client-handshake.js'
import type { Sandbox } from '../../../src/server/sandbox.js'

export interface AuthReply {
  status: number | string
  body: { type?: string; error?: { code?: string } } & Record<string, unknown>
  headers: http.IncomingHttpHeaders
}

/** POST /auth with a bounded time; `localAddress` picks the loopback source address (127.0.0.x). */
export function postAuth(port: number, body: unknown, localAddress = '127.0.0.1', timeoutMs = 3000): Promise<AuthReply> {
  return new Promise((resolve) => {
    const data = JSON.stringify(body)
    const req = http.request(
      { host: '127.0.0.1', port, path: '/auth', method: 'POST', localAddress, agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
          let parsed: AuthReply['body'] = {}
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString()) as AuthReply['body']
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers })
        })
      },
    )
    const timer = setTimeout(() => {
      req.destroy()
      resolve({ status: 'timeout', body: {}, headers: {} })
    }, timeoutMs)
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: `error ${e.code ?? e.message}`, body: {}, headers: {} }))
    req.on('close', () => clearTimeout(timer))
    req.end(data)
  })
}

/** POST /auth with a chosen Host header (a relay writes whatever Host it likes). */
export function postAuthWithHost(port: number, body: unknown, host: string): Promise<AuthReply> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body)
    const req = http.request(
      { host: '127.0.0.1', port, path: '/auth', method: 'POST', agent: false, headers: { host, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) as AuthReply['body'], headers: res.headers }))
      },
    )
    req.on('error', reject)
    req.end(data)
  })
}

/** A whole handshake by the sandbox client; resolves 'ok' or what went wrong. */
export async function honestHandshake(sb: Sandbox, port: number, localAddress = '127.0.0.1'): Promise<string> {
  const c = createClientHandshake({ keyPair: sb.clientKey, audience: `http://127.0.0.1:${port}/auth`, serverTrust: () => ({}) })
  const r2 = await postAuth(port, c.start(), localAddress)
  if (r2.status !== 200) return `m1: ${r2.status} ${r2.body.error?.code ?? ''}`
  const r4 = await postAuth(port, await c.handleChallenge(r2.body), localAddress)
  if (r4.status !== 200) return `m3: ${r4.status} ${r4.body.error?.code ?? ''}`
  c.handleComplete(r4.body)
  return 'ok'
}
