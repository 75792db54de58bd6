/** A protected endpoint whose handler reports the AuthInfo it was handed (and, on request, tries to change its nested metadata). */
import assert from 'node:assert/strict'
import { mkdtemp, readFile, writeFile } from 'node:fs/promises'
import * as http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadConfig } from '../../../src/config/load-config.js'
import type { ClientSession } from '../../../src/handshake/client-handshake.js'
import { createMcpAuth, mountMcpAuth, type McpRequest } from '../../../src/mcp/server.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService } from '../../../src/server/from-config.js'
import { createSandbox, type Sandbox } from '../../../src/server/sandbox.js'
import { createRequestProof } from '../../../src/session/session-token.js'
import { MCP_BODY, quiet, send } from './loopback-http.js'
import { listenerSession, listenUntilCleanup } from './mcp-listener.js'

export interface Setup {
  sb: Sandbox
  configured: ConfiguredAuthService
  port: number
}

export interface Seen {
  scopes: string[]
  role: unknown
  metadataScopes: unknown
  metadataTeam: unknown
}

/**
 * A protected endpoint whose handler answers with what it saw; with `x-attack: 1` it then tries to
 * change every nested value of the metadata it was handed (errors swallowed).
 */
export async function endpoint(metadata: Record<string, unknown>): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-security-meta-'))
  const sb = await createSandbox(dir, { server: { audit: { enabled: false } } })
  const text = await readFile(sb.serverAllowlistPath, 'utf8')
  const withMeta = text.replace(/"metadata":\{[^}]*\}/, `"metadata":${JSON.stringify(metadata)}`)
  assert.notEqual(withMeta, text, 'the sandbox allowlist has a metadata object to replace')
  await writeFile(sb.serverAllowlistPath, withMeta)
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const configured = await createAuthServiceFromConfig(config, { audit: quiet(), allowlistPollMs: 100 })
  const mcpAuth = createMcpAuth(configured.service, { bindSessions: false })
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const auth = (req as McpRequest).auth!
    const extra = auth.extra as { role?: unknown; metadata?: Record<string, unknown> }
    const md = extra.metadata ?? {}
    const seen: Seen = {
      scopes: [...auth.scopes],
      role: extra.role ?? null,
      metadataScopes: JSON.parse(JSON.stringify(md.scopes ?? null)),
      metadataTeam: JSON.parse(JSON.stringify(md.team ?? null)),
    }
    if (req.headers['x-attack'] === '1') {
      const tryIt = (f: () => void): void => {
        try {
          f()
        } catch {
          /* refused: good */
        }
      }
      tryIt(() => (md.scopes as string[]).push('admin:all'))
      tryIt(() => ((md.team as Record<string, unknown>).name = 'root'))
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(seen))
  }
  const server = http.createServer()
  mountMcpAuth(server, mcpAuth, { handler })
  return { sb, configured, port: await listenUntilCleanup(server, configured, dir) }
}

/** A session of the sandbox client with the endpoint (as mcp-listener.ts makes one). */
export function handshake(s: Setup): Promise<ClientSession> {
  return listenerSession(s)
}

export async function call(s: Setup, session: ClientSession, attack = false): Promise<Seen> {
  const proof = createRequestProof({ session, method: 'POST', target: '/mcp', body: MCP_BODY })
  const headers: Record<string, string> = { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof }
  if (attack) headers['x-attack'] = '1'
  const r = await send({ port: s.port }, { body: MCP_BODY, headers })
  assert.equal(r.status, 200, r.text)
  return JSON.parse(r.text) as Seen
}

/** The status of a request of `session` (no assertion). */
export async function statusOf(s: Setup, session: ClientSession): Promise<number> {
  const proof = createRequestProof({ session, method: 'POST', target: '/mcp', body: MCP_BODY })
  const r = await send({ port: s.port }, { body: MCP_BODY, headers: { authorization: `Bearer ${session.token}`, 'mcp-pki-proof': proof } })
  // a connection that failed has no HTTP status: -1, which no assertion of a status accepts
  return typeof r.status === 'number' ? r.status : -1
}
