/**
 * A small protected endpoint for the examples and the demo: `GET /whoami` behind
 * `service.verifyRequest` (session token + request proof), answering with what the server now
 * knows about the caller. Also the client helper that signs such a request.
 * @module
 */
import type * as http from 'node:http'
import { AuthError, httpStatusFor, toWireError } from '../errors.js'
import type { ClientSession } from '../handshake/client-handshake.js'
import { EPOCH_HEADER, PROOF_HEADER, REFUSAL_HEADER } from '../protocol/constants.js'
import { createRequestProof } from '../session/session-token.js'
import type { AuthService } from '../transport/auth-service.js'

const MAX_BODY = 64 * 1024

function readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) {
        resolve(undefined)
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'content-length': String(Buffer.byteLength(text)), ...headers })
  res.end(text)
}

/**
 * Handles `GET|POST <path>` (default `/whoami`); returns false for other paths. The reply names the
 * caller's key fingerprint, role and session; a bad token or proof gets 401 with the error code.
 */
export function createWhoamiHandler(service: AuthService, path = '/whoami'): (req: http.IncomingMessage, res: http.ServerResponse) => boolean {
  return (req, res) => {
    const target = req.url ?? '/'
    const q = target.indexOf('?')
    if ((q === -1 ? target : target.slice(0, q)) !== path) return false
    void (async () => {
      const body = await readBody(req)
      if (body === undefined) {
        send(res, 413, { error: { code: 'payload_too_large', message: 'body too large' } })
        return
      }
      try {
        const info = await service.verifyRequest(
          { authorization: req.headers.authorization, proof: headerText(req.headers[PROOF_HEADER]), method: req.method ?? 'GET', target, body },
          { remote: req.socket.remoteAddress, transport: 'http', localPort: req.socket.localPort ?? 0, localAddress: req.socket.localAddress ?? '' },
        )
        send(res, 200, {
          client_fingerprint: info.clientFingerprint,
          role: typeof info.entry.metadata.role === 'string' ? info.entry.metadata.role : null,
          metadata: info.entry.metadata,
          session_id: info.sessionId,
          expires_at: new Date(info.expiresAt).toISOString(),
          server_fingerprint: service.fingerprint,
        })
      } catch (err) {
        const wire = toWireError(err)
        const status = err instanceof AuthError ? httpStatusFor(wire.code) : 500
        const headers: Record<string, string> = status === 401 ? { 'www-authenticate': 'Bearer realm="mcp-pki"' } : {}
        if (err instanceof AuthError && err.epochHeader !== undefined) headers[EPOCH_HEADER] = err.epochHeader
        if (err instanceof AuthError && err.refusalHeader !== undefined) headers[REFUSAL_HEADER] = err.refusalHeader
        send(res, status, { error: wire }, headers)
      }
    })().catch(() => {
      if (!res.headersSent) send(res, 500, { error: { code: 'internal_error', message: 'internal error' } })
    })
    return true
  }
}

function headerText(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

/** The headers that authenticate one request with a session (token + proof of the session key). */
export function sessionHeaders(session: ClientSession, method: string, target: string, body?: string | Uint8Array): Record<string, string> {
  return {
    authorization: `Bearer ${session.token}`,
    [PROOF_HEADER]: createRequestProof({ session, method, target, body: body ?? null }),
  }
}
