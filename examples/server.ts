/**
 * Example server: serves the mutual handshake (POST /auth, WebSocket /ws, GET /health) as the
 * config says, plus one protected endpoint, GET /whoami, that only answers requests made with a
 * session (token + proof of the session key).
 *
 *   npx tsx examples/server.ts --config server_config.yml [--port 8443]
 *
 * Prints what each client proved as it authenticates. Ctrl-C stops it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { parseArgs } from 'node:util'
import { loadConfigFile } from '../src/config/load-config.js'
import { startServerFromConfig } from '../src/server/start-server.js'
import { createWhoamiHandler } from '../src/server/whoami.js'
import type { AuthService } from '../src/transport/auth-service.js'

const { values } = parseArgs({
  options: { config: { type: 'string', default: 'server_config.yml' }, port: { type: 'string' }, host: { type: 'string' } },
})

async function main(): Promise<void> {
  const { config, warnings } = await loadConfigFile(values.config!)
  for (const w of warnings) console.error(`warning: ${w}`)
  const handlers: { whoami?: (req: IncomingMessage, res: ServerResponse) => boolean } = {}
  const server = await startServerFromConfig(config, {
    ...(values.port === undefined ? {} : { port: Number(values.port) }),
    ...(values.host === undefined ? {} : { host: values.host }),
    fallback: (req, res) => {
      if (handlers.whoami?.(req, res)) return
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found; try POST /auth, GET /whoami"}')
    },
    onEvent: (event, fields) => {
      if (event === 'handshake.success') {
        console.log(
          `[server] client ${String(fields.client_fingerprint)} (role ${String(fields.role ?? 'none')}) proved it holds its allowlisted key ` +
            `over ${String(fields.transport)}; session ${String(fields.session_id)} until ${String(fields.expires_at)}`,
        )
      } else if (event === 'handshake.failure') {
        console.log(`[server] refused a handshake at ${String(fields.step)}: ${String(fields.code)} (${String(fields.reason)})`)
      } else if (event === 'session.rejected') {
        console.log(`[server] refused a request: ${String(fields.code)} (${String(fields.reason)})`)
      } else if (event.startsWith('allowlist.')) {
        console.log(`[server] ${event}: ${JSON.stringify(fields)}`)
      }
    },
    onAuthenticated: (ws, conn) => {
      ws.on('message', (data) => ws.send(JSON.stringify({ echo: String(data), from: conn.clientFingerprint })))
    },
  })
  const service: AuthService = server.configured.service
  handlers.whoami = createWhoamiHandler(service)
  console.log(`[server] key fingerprint ${server.fingerprint}`)
  console.log(`[server] ${server.configured.allowlist.size} client key(s) on the allowlist ${config.acl.allowlist_path}`)
  console.log(`[server] listening: handshake POST ${server.authUrl}, WebSocket ${server.wsUrl}, protected GET ${server.authUrl.replace(/\/auth$/, '/whoami')}`)
  const stop = (): void => {
    console.log('[server] shutting down')
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

main().catch((err: unknown) => {
  console.error(`error: ${(err as Error).message}`)
  process.exit(1)
})
