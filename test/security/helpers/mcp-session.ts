/**
 * A live MCP session for per-request attacks: an MCP endpoint (mountMcpAuth + fetchHandler) whose
 * server clock the test controls, a session of the sandbox client, and proofs made to measure.
 */
import assert from 'node:assert/strict'
import type { ClientSession } from '../../../src/handshake/client-handshake.js'
import type { McpAuth, McpFetchHandler } from '../../../src/mcp/server.js'
import type { ConfiguredAuthService } from '../../../src/server/from-config.js'
import type { Sandbox } from '../../../src/server/sandbox.js'
import { createRequestProof } from '../../../src/session/session-token.js'
import { MCP_BODY, replyCode, type Reply, type Target } from './loopback-http.js'
import { handshakeAt, mcpServer, sandbox } from './sandbox-servers.js'

export interface SessionSetup {
  sb: Sandbox
  to: Target
  port: number
  clock: { ms: number }
  session: ClientSession
  /** What the default handler was handed, request by request. */
  seen: Array<{ method: string; url: string; body: string; sid: string | null }>
  configured: ConfiguredAuthService
  mcpAuth: McpAuth
  headers(proof: string, token?: string): Record<string, string>
  proof(o?: { method?: string; target?: string; body?: string; at?: number; sid?: string }): string
}

export async function sessionSetup(o: { fetchHandler?: McpFetchHandler } = {}): Promise<SessionSetup> {
  const sb = await sandbox()
  const clock = { ms: Date.now() }
  const seen: SessionSetup['seen'] = []
  const fetchHandler: McpFetchHandler =
    o.fetchHandler ??
    (async (request, info) => {
      const body = request.body === null ? '' : await request.text()
      seen.push({ method: request.method, url: new URL(request.url).pathname + new URL(request.url).search, body, sid: request.headers.get('mcp-session-id') })
      return Response.json({ reached: true, client: info.clientId }, { headers: { 'mcp-session-id': 'sess-' + info.clientId.slice(0, 8) } })
    })
  const s = await mcpServer(sb, { clock: () => clock.ms, fetchHandler })
  const session = await handshakeAt(s.to, sb, `http://127.0.0.1:${s.port!}/mcp`)
  return {
    sb,
    to: s.to,
    port: s.port!,
    clock,
    session,
    seen,
    configured: s.configured,
    mcpAuth: s.mcpAuth,
    headers: (proof, token = session.token) => ({ authorization: `Bearer ${token}`, 'mcp-pki-proof': proof }),
    proof: (p = {}) =>
      createRequestProof({ session: session, method: p.method ?? 'POST', target: p.target ?? '/mcp', body: p.body ?? MCP_BODY, timestamp: p.at ?? clock.ms, mcpSessionId: p.sid ?? '' }),
  }
}

/** The reply is a refusal with `status` and `code` (a 401 also carries WWW-Authenticate: Bearer). */
export async function expectRefused(s: SessionSetup, r: Reply, status: number, code: string, label: string): Promise<void> {
  assert.equal(r.status, status, `${label}: ${r.text}`)
  assert.equal(replyCode(r), code, `${label}: ${r.text}`)
  if (status === 401) assert.match(String(r.headers['www-authenticate']), /^Bearer /, label)
  await Promise.resolve()
  void s
}
