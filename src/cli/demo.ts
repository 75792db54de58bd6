#!/usr/bin/env node
/**
 * `make demo`: a whole mutual authentication on embedded defaults, in a temporary folder that is
 * removed afterwards. Generates both key pairs, builds both allowlists, writes and validates both
 * configs, starts the server on 127.0.0.1 (a free port), authenticates over HTTP and over
 * WebSocket, makes one proof-bound request, and shows that a replayed proof and an unknown key are
 * refused, printing what each side proved at every step. Exit 0 when every step behaved as
 * expected, 1 otherwise.
 * @module
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { updateAllowlistFile } from '../allowlist/allowlist-file.js'
import { AuditLogger } from '../audit/audit-logger.js'
import { loadConfigFile } from '../config/load-config.js'
import { isAuthError } from '../errors.js'
import { createServerTrust } from '../handshake/client-handshake.js'
import { writePrivateKeyFile, writePublicKeyFile } from '../keys/key-file.js'
import { generateKeyPair } from '../keys/key-pair.js'
import { startServerFromConfig } from '../server/start-server.js'
import { createWhoamiHandler, sessionHeaders } from '../server/whoami.js'
import { authenticate, authenticateWithConfig, clientSetupFromConfig } from '../transport/http-client.js'
import { clientKeyOptions } from '../transport/client-key.js'
import { authenticateWebSocket } from '../transport/ws-client.js'

const short = (fp: string): string => `${fp.slice(0, 16)}…`
let failures = 0
let stepNo = 0

function step(title: string): void {
  stepNo++
  process.stdout.write(`\n${stepNo}. ${title}\n`)
}
function say(who: 'server' | 'client' | 'demo', text: string): void {
  process.stdout.write(`   [${who}] ${text}\n`)
}
function check(ok: boolean, text: string): void {
  process.stdout.write(`   ${ok ? '✓' : '✗'} ${text}\n`)
  if (!ok) failures++
}

const SERVER_CONFIG = `# demo server configuration (embedded defaults)
keys:
  private_key_path: "./keys/server_private.pem"
  public_key_path: "./keys/server_public.pem"
acl:
  allowlist_path: "./keys/server_allowlist.json"
auth:
  timestamp_tolerance: 300
  nonce_cache_size: 10000
  session_ttl: 900
  session_binding: "proof"
audit:
  enabled: true
  log_file: "./logs/server_audit.jsonl"
  log_level: "INFO"
transport:
  type: "http"
  host: "127.0.0.1"
  port: 0
`

const CLIENT_CONFIG = `# demo client configuration (embedded defaults)
keys:
  private_key_path: "./keys/client_private.pem"
  public_key_path: "./keys/client_public.pem"
acl:
  allowlist_path: "./keys/client_allowlist.json"
audit:
  enabled: false
transport:
  timeout: 10
  retry_attempts: 0
`

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-pki-demo-'))
  process.stdout.write(`mcp-pki-auth demo — mutual ed25519 authentication, in ${dir}\n`)
  let stopServer: (() => Promise<void>) | undefined
  try {
    step('Generate key pairs (mcp-keygen)')
    const serverKey = generateKeyPair()
    const clientKey = generateKeyPair()
    await mkdir(join(dir, 'keys'), { recursive: true, mode: 0o700 })
    await writePrivateKeyFile(join(dir, 'keys/server_private.pem'), serverKey.privateKey)
    await writePublicKeyFile(join(dir, 'keys/server_public.pem'), serverKey.publicKey)
    await writePrivateKeyFile(join(dir, 'keys/client_private.pem'), clientKey.privateKey)
    await writePublicKeyFile(join(dir, 'keys/client_public.pem'), clientKey.publicKey)
    say('demo', `server key ${serverKey.fingerprint}`)
    say('demo', `client key ${clientKey.fingerprint}`)

    step('Build both allowlists (mcp-allowlist add)')
    await updateAllowlistFile(join(dir, 'keys/server_allowlist.json'), (l) => {
      l.add({ publicKeyRaw: clientKey.publicKeyRaw, metadata: { role: 'trusted_client', org: 'example_org' } })
    })
    await updateAllowlistFile(join(dir, 'keys/client_allowlist.json'), (l) => {
      l.add({ publicKeyRaw: serverKey.publicKeyRaw, metadata: { role: 'mcp_server', endpoint: '127.0.0.1' } })
    })
    say('server', `allowlist: client ${short(clientKey.fingerprint)} as role trusted_client`)
    say('client', `allowlist: server ${short(serverKey.fingerprint)} as role mcp_server`)

    step('Write and validate both configs (mcp-config-validate)')
    await writeFile(join(dir, 'server_config.yml'), SERVER_CONFIG)
    await writeFile(join(dir, 'client_config.yml'), CLIENT_CONFIG)
    const serverCfg = await loadConfigFile(join(dir, 'server_config.yml'), { env: {} })
    const clientCfg = await loadConfigFile(join(dir, 'client_config.yml'), { env: {} })
    check(true, `server_config.yml valid${serverCfg.warnings.length ? ` (${serverCfg.warnings.length} warnings)` : ''}`)
    check(true, `client_config.yml valid${clientCfg.warnings.length ? ` (${clientCfg.warnings.length} warnings)` : ''}`)

    step('Start the server (mcp-pki-server) on 127.0.0.1')
    const audit = AuditLogger.fromConfig(serverCfg.config.audit)
    const handlers: { whoami?: (req: IncomingMessage, res: ServerResponse) => boolean } = {}
    const server = await startServerFromConfig(serverCfg.config, {
      audit,
      fallback: (req, res) => {
        if (handlers.whoami?.(req, res)) return
        res.writeHead(404).end()
      },
      onEvent: (event, fields) => {
        if (event === 'handshake.success') {
          say('server', `client ${short(String(fields.client_fingerprint))} proved it holds an allowlisted key (role ${String(fields.role)}) over ${String(fields.transport)}; issued session ${String(fields.session_id)}`)
        } else if (event === 'handshake.failure') {
          say('server', `refused a handshake: ${String(fields.code)} — ${String(fields.reason)}`)
        } else if (event === 'session.rejected') {
          say('server', `refused a request: ${String(fields.code)} — ${String(fields.reason)}`)
        }
      },
    })
    stopServer = async () => {
      await server.close()
      await audit.close()
    }
    handlers.whoami = createWhoamiHandler(server.configured.service)
    say('server', `listening on ${server.authUrl} and ${server.wsUrl}, key ${short(server.fingerprint)}`)

    step('Mutual authentication over HTTP (POST /auth, 4 messages)')
    const t0 = performance.now()
    const session = await authenticateWithConfig(clientCfg.config, server.authUrl)
    say('client', `the server proved it holds key ${short(session.serverFingerprint)} (on my allowlist: ${JSON.stringify(session.serverMetadata)})`)
    say('client', 'its signatures cover my fresh nonce, both ephemeral keys and the audience: live, not replayed, not relayed')
    say('client', `session until ${new Date(session.expiresAt).toISOString()}, bound to a session key only we two know`)
    check(session.serverFingerprint === serverKey.fingerprint && session.clientFingerprint === clientKey.fingerprint, `both sides authenticated in ${(performance.now() - t0).toFixed(1)} ms`)

    step('Mutual authentication over WebSocket (/ws, same messages as frames)')
    const setup = await clientSetupFromConfig(clientCfg.config, server.wsUrl)
    const ws = await authenticateWebSocket({ url: server.wsUrl, ...clientKeyOptions(setup), serverTrust: setup.serverTrust, audience: setup.audience, timeoutMs: 10_000 })
    check(ws.session.serverFingerprint === serverKey.fingerprint && server.ws.authenticatedConnections.size === 1, 'the WebSocket connection is authenticated on both ends')
    ws.socket.close()

    step('One request with the session (GET /whoami, token + proof of the session key)')
    const origin = server.authUrl.replace(/\/auth$/, '')
    const headers = sessionHeaders(session, 'GET', '/whoami')
    const res = await fetch(`${origin}/whoami`, { headers })
    const who = (await res.json()) as { client_fingerprint?: string; role?: string }
    say('server', `request accepted from ${short(String(who.client_fingerprint))}, role ${String(who.role)}`)
    check(res.status === 200 && who.client_fingerprint === clientKey.fingerprint, 'the server knows who is calling, per request, in microseconds')

    step('Replay the same request proof')
    const replay = await fetch(`${origin}/whoami`, { headers })
    const replayBody = (await replay.json()) as { error?: { code?: string } }
    check(replay.status === 401 && replayBody.error?.code === 'replay_detected', `refused: HTTP ${replay.status} ${String(replayBody.error?.code)}`)

    step('The stolen token alone, without the session key')
    const stolen = await fetch(`${origin}/whoami`, { headers: { authorization: `Bearer ${session.token}` } })
    const stolenBody = (await stolen.json()) as { error?: { code?: string } }
    check(stolen.status === 401 && stolenBody.error?.code === 'proof_missing', `refused: HTTP ${stolen.status} ${String(stolenBody.error?.code)}`)

    step('A client key the server does not know')
    const stranger = generateKeyPair()
    try {
      await authenticate({ url: server.authUrl, keyPair: stranger, serverTrust: createServerTrust({ pinnedFingerprint: serverKey.fingerprint }), retryAttempts: 0, timeoutMs: 10_000 })
      check(false, 'an unknown key was accepted')
    } catch (err) {
      check(isAuthError(err) && err.code === 'authentication_failed', `refused: ${isAuthError(err) ? err.code : String(err)} (${(err as Error).message})`)
    }

    step('A server key the client does not trust')
    const impostor = generateKeyPair()
    try {
      await authenticate({ url: server.authUrl, keyPair: clientKey, serverTrust: createServerTrust({ pinnedFingerprint: impostor.fingerprint }), retryAttempts: 0, timeoutMs: 10_000 })
      check(false, 'a server key other than the pinned one was accepted')
    } catch (err) {
      check(isAuthError(err) && err.code === 'server_key_mismatch', `the client refused to continue: ${isAuthError(err) ? err.code : String(err)}`)
    }
  } finally {
    await stopServer?.()
    await rm(dir, { recursive: true, force: true })
  }
  process.stdout.write(failures === 0 ? '\nDemo complete: every step behaved as expected. (temporary files removed)\n' : `\nDemo FAILED: ${failures} step(s) did not behave as expected.\n`)
  if (failures > 0) process.exitCode = 1
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${isAuthError(err) ? `${err.code}: ` : ''}${(err as Error).message}\n`)
  process.exitCode = 1
})
