import { test, after, before } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AuditLogger } from '../../src/audit/audit-logger.js'
import { loadConfig } from '../../src/config/load-config.js'
import { createSandbox, type ConfigObject, type Sandbox } from '../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../src/server/start-server.js'
import { authenticate, authenticateWithConfig, clientSetupFromConfig } from '../../src/transport/http-client.js'
import { tlsClientOptions, tlsServerOptions } from '../../src/transport/tls.js'
import { authenticateWebSocket } from '../../src/transport/ws-client.js'

const dirs: string[] = []
const servers: RunningServer[] = []
let certDir: string
after(async () => {
  for (const s of servers) await s.close()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

function selfSigned(dir: string, name: string, cn: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`)
  const key = join(dir, `${name}.key`)
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ed25519', '-keyout', key, '-out', cert, '-days', '2', '-nodes', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' })
  return { cert, key }
}

before(async () => {
  certDir = await mkdtemp(join(tmpdir(), 'mcp-tls-certs-'))
  dirs.push(certDir)
  selfSigned(certDir, 'server', 'localhost')
  selfSigned(certDir, 'client', 'mcp-client')
})

async function setup(ssl: ConfigObject, type = 'https', clientSsl: ConfigObject = { ca_file: join(certDir, 'server.crt') }): Promise<{ sb: Sandbox; server: RunningServer }> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-tls-'))
  dirs.push(dir)
  const sb = await createSandbox(dir, {
    server: { audit: { enabled: false }, transport: { type, ssl: { cert_file: join(certDir, 'server.crt'), key_file: join(certDir, 'server.key'), ...ssl } } },
    client: { transport: { ssl: clientSsl } },
  })
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  const server = await startServerFromConfig(config, { audit: new AuditLogger({ enabled: false }) })
  servers.push(server)
  return { sb, server }
}

test('https: mutual authentication through a server with a self-signed certificate trusted via ca_file', async () => {
  const { sb, server } = await setup({})
  assert.match(server.authUrl, /^https:\/\/127\.0\.0\.1:\d+\/auth$/)
  const clientConfig = await loadConfig(sb.clientConfigPath, { env: {} })
  const session = await authenticateWithConfig(clientConfig, server.authUrl)
  assert.equal(session.serverFingerprint, sb.serverKey.fingerprint)
  assert.equal(session.clientFingerprint, sb.clientKey.fingerprint)

  // without trusting the certificate, the TLS layer refuses
  await assert.rejects(authenticate({ url: server.authUrl, keyPair: sb.clientKey, serverTrust: () => undefined, retryAttempts: 0 }), { code: 'transport_error' })
})

test('wss: the WebSocket handshake over TLS on the same port', async () => {
  const { sb, server } = await setup({}, 'wss')
  assert.match(server.wsUrl, /^wss:\/\//)
  const clientConfig = await loadConfig(sb.clientConfigPath, { env: {} })
  const setupC = await clientSetupFromConfig(clientConfig, server.wsUrl)
  const tls = await tlsClientOptions({ caFile: join(certDir, 'server.crt') })
  const { session, socket } = await authenticateWebSocket({ url: server.wsUrl, keyPair: setupC.keyPair, serverTrust: setupC.serverTrust, tls, timeoutMs: 5000 })
  socket.close()
  assert.equal(session.serverFingerprint, sb.serverKey.fingerprint)
})

test('verify_mode required: a client without a certificate is cut at the TLS layer; with one signed by ca_file it authenticates', async () => {
  const { sb, server } = await setup({ verify_mode: 'required', ca_file: join(certDir, 'client.crt') }, 'https', {
    ca_file: join(certDir, 'server.crt'),
    cert_file: join(certDir, 'client.crt'),
    key_file: join(certDir, 'client.key'),
  })
  const clientConfig = await loadConfig(sb.clientConfigPath, { env: {} })
  const session = await authenticateWithConfig(clientConfig, server.authUrl)
  assert.equal(session.clientFingerprint, sb.clientKey.fingerprint)

  const noCert = await loadConfig(sb.clientConfigPath, { env: {} })
  const { createNodeFetch } = await import('../../src/transport/tls.js')
  const fetchWithoutCert = await createNodeFetch({ caFile: noCert.transport.ssl.ca_file })
  await assert.rejects(authenticate({ url: server.authUrl, keyPair: sb.clientKey, serverTrust: () => undefined, retryAttempts: 0, fetch: fetchWithoutCert }), { code: 'transport_error' })
})

test('tlsServerOptions maps verify_mode and reports a missing file with its config path', async () => {
  const base = { cert_file: join(certDir, 'server.crt'), key_file: join(certDir, 'server.key'), ca_file: null }
  const none = await tlsServerOptions({ ...base, verify_mode: 'none' })
  assert.deepEqual([none.requestCert, none.rejectUnauthorized], [false, false])
  const optional = await tlsServerOptions({ ...base, verify_mode: 'optional' })
  assert.deepEqual([optional.requestCert, optional.rejectUnauthorized], [true, false])
  const required = await tlsServerOptions({ ...base, verify_mode: 'required' })
  assert.deepEqual([required.requestCert, required.rejectUnauthorized], [true, true])
  await assert.rejects(tlsServerOptions({ ...base, cert_file: join(certDir, 'missing.crt'), verify_mode: 'none' }), (err: { code: string; message: string }) => err.code === 'config_invalid' && err.message.includes('transport.ssl.cert_file'))
})
