/**
 * Example client: authenticates to the example server (mutually: each side proves its ed25519
 * key to the other), then makes one request with the session, GET /whoami, signed with the
 * session key, and prints what each side proved.
 *
 *   npx tsx examples/client.ts --config client_config.yml --server-url http://127.0.0.1:8443/auth
 *   npx tsx examples/client.ts --config client_config.yml --server-url ws://127.0.0.1:8443/ws
 */
import { parseArgs } from 'node:util'
import { loadConfigFile } from '../src/config/load-config.js'
import type { ClientSession } from '../src/handshake/client-handshake.js'
import { isAuthError } from '../src/errors.js'
import { sessionHeaders } from '../src/server/whoami.js'
import { authenticateWithConfig, clientSetupFromConfig } from '../src/transport/http-client.js'
import { createNodeFetch, tlsClientOptions, tlsClientSettingsFromConfig } from '../src/transport/tls.js'
import { authenticateWebSocket } from '../src/transport/ws-client.js'

const { values } = parseArgs({
  options: { config: { type: 'string', default: 'client_config.yml' }, 'server-url': { type: 'string' } },
})

async function main(): Promise<void> {
  const { config } = await loadConfigFile(values.config!)
  const serverUrl = values['server-url'] ?? Object.values(config.servers)[0]?.url
  if (serverUrl === undefined) throw new Error('give --server-url (or name a server under servers: in the config)')
  const url = new URL(serverUrl)
  const started = performance.now()
  let session: ClientSession
  if (url.protocol === 'ws:' || url.protocol === 'wss:') {
    const setup = await clientSetupFromConfig(config, serverUrl)
    const tls = url.protocol === 'wss:' ? await tlsClientOptions(tlsClientSettingsFromConfig(config)) : undefined
    const ws = await authenticateWebSocket({ url: serverUrl, keyPair: setup.keyPair, serverTrust: setup.serverTrust, audience: setup.audience, ...(tls ? { tls } : {}) })
    session = ws.session
    ws.socket.close()
  } else {
    session = await authenticateWithConfig(config, serverUrl)
  }
  const ms = performance.now() - started
  console.log(`[client] mutual authentication with ${url.origin} succeeded in ${ms.toFixed(1)} ms`)
  console.log(`[client] the server proved it holds key ${session.serverFingerprint}`)
  console.log(`[client]   which my allowlist knows as ${JSON.stringify(session.serverMetadata ?? {})}`)
  console.log('[client]   its signatures cover my fresh nonce and the whole transcript: live, not replayed, not relayed')
  console.log(`[client] I proved I hold key ${session.clientFingerprint}`)
  console.log(`[client] session valid until ${new Date(session.expiresAt).toISOString()}; every request is signed with a session key only we two know`)

  // One request with the session: the token plus a proof (HMAC under the session key).
  const httpOrigin = url.origin.replace(/^ws/, 'http')
  const doFetch = await createNodeFetch(tlsClientSettingsFromConfig(config))
  const res = await doFetch(`${httpOrigin}/whoami`, { method: 'GET', headers: sessionHeaders(session, 'GET', '/whoami'), body: '', signal: AbortSignal.timeout(10_000) })
  const body = JSON.parse(await res.text()) as Record<string, unknown>
  if (res.status !== 200) throw new Error(`GET /whoami answered ${res.status}: ${JSON.stringify(body)}`)
  console.log(`[client] GET /whoami → the server sees fingerprint ${String(body.client_fingerprint)}, role ${String(body.role)}`)
}

main().catch((err: unknown) => {
  console.error(`[client] failed: ${isAuthError(err) ? `${err.code}: ` : ''}${(err as Error).message}`)
  process.exit(1)
})
