/**
 * Issue 11 (items 1–3, 5, 6): mcp-pki-proxy, the built bin, driven by the SDK's
 * StdioClientTransport as a desktop app drives it — over https with a private CA and client
 * certificates, through an HTTPS_PROXY, with mcp-remote's flags, and failing in ways the app can
 * show (JSON-RPC errors with the fix, the same hint on stderr, no noise on a clean exit).
 */
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { createServer as createHttpsServer, type ServerOptions } from 'node:https'
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js'
import { Allowlist } from '../../src/allowlist/allowlist.js'
import { saveAllowlistFile } from '../../src/allowlist/allowlist-file.js'
import { loadConfig } from '../../src/config/load-config.js'
import { generateKeyPair } from '../../src/keys/key-pair.js'
import { createAuthFetchFromConfig } from '../../src/mcp/client.js'
import { createMcpAuth, mountMcpAuth } from '../../src/mcp/server.js'
import { createAuthServiceFromConfig, type ConfiguredAuthService } from '../../src/server/from-config.js'
import { makeDeployment, PROXY_BIN, type Deployment } from './fixtures/deployment.js'
import { closeServer, connectClient, statefulMcpHandler, textOf, type ToolCalls } from './fixtures/harness.js'

let d: Deployment
let configured: ConfiguredAuthService
let certDir: string
const servers: Server[] = []
const calls: ToolCalls = { whoami: 0, admin: 0 }
const seenHeaders: IncomingHttpHeaders[] = []

function selfSigned(name: string, cn: string): { cert: string; key: string } {
  const cert = join(certDir, `${name}.crt`)
  const key = join(certDir, `${name}.key`)
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ed25519', '-keyout', key, '-out', cert, '-days', '2', '-nodes', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' })
  return { cert, key }
}

/** An MCP server protected by mcp-pki-auth, over http or https; records request headers. */
async function startMcp(tls?: ServerOptions): Promise<string> {
  const server = (tls === undefined ? createHttpServer() : createHttpsServer(tls)) as Server
  mountMcpAuth(server, createMcpAuth(configured.service), { handler: statefulMcpHandler(calls) })
  // After mounting: listeners there before would serve the other paths.
  server.prependListener('request', (req) => seenHeaders.push(req.headers))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  servers.push(server)
  return `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${(server.address() as AddressInfo).port}`
}

let httpOrigin: string
let httpsOrigin: string
let mtlsOrigin: string
let serverTls: { cert: string; key: string }
let clientTls: { cert: string; key: string }

before(async () => {
  assert.ok(existsSync(PROXY_BIN), `${PROXY_BIN} is missing: build first (npx tsc -p tsconfig.json)`)
  d = await makeDeployment()
  certDir = await mkdtemp(join(tmpdir(), 'mcp-proxy-ux-certs-'))
  serverTls = selfSigned('server', 'localhost')
  clientTls = selfSigned('client', 'mcp-client')
  configured = await createAuthServiceFromConfig(await loadConfig(d.serverConfig))
  httpOrigin = await startMcp()
  const pem = async (p: string): Promise<Buffer> => readFile(p)
  httpsOrigin = await startMcp({ cert: await pem(serverTls.cert), key: await pem(serverTls.key) })
  mtlsOrigin = await startMcp({ cert: await pem(serverTls.cert), key: await pem(serverTls.key), ca: await pem(clientTls.cert), requestCert: true, rejectUnauthorized: true })
})

after(async () => {
  for (const s of servers) await closeServer(s)
  await configured.close()
  await d.cleanup()
  await rm(certDir, { recursive: true, force: true })
})

/** The proxy as an app starts it; NODE_EXTRA_CA_CERTS and proxy variables removed unless given. */
function proxy(args: string[], env: Record<string, string> = {}): { transport: StdioClientTransport; stderr: () => string } {
  const base: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^(NODE_EXTRA_CA_CERTS|https?_proxy|no_proxy)$/i.test(k)) base[k] = v
  const transport = new StdioClientTransport({ command: process.execPath, args: [PROXY_BIN, ...args], env: { ...base, ...env }, stderr: 'pipe' })
  let text = ''
  transport.stderr?.on('data', (c: Buffer) => (text += c.toString()))
  return { transport, stderr: () => text }
}

async function withClient<T>(args: string[], use: (client: Client) => Promise<T>, env: Record<string, string> = {}): Promise<{ value: T; stderr: string }> {
  const { transport, stderr } = proxy(args, env)
  const client = new Client({ name: 'desktop-app', version: '1.0.0' })
  await client.connect(transport)
  try {
    return { value: await use(client), stderr: stderr() }
  } finally {
    await client.close()
  }
}

/** Connecting fails: returns the error the app sees and the proxy's stderr. */
async function connectError(args: string[], env: Record<string, string> = {}): Promise<{ message: string; stderr: string }> {
  const { transport, stderr } = proxy(args, env)
  const client = new Client({ name: 'desktop-app', version: '1.0.0' })
  const err = await client.connect(transport).then(
    () => assert.fail('connect should have failed'),
    (e: unknown) => e as Error,
  )
  await client.close().catch(() => {})
  // Let the proxy finish writing stderr.
  for (let i = 0; i < 50 && !/^hint: |^error: /m.test(stderr()); i++) await new Promise((r) => setTimeout(r, 100))
  return { message: err.message, stderr: stderr() }
}

test('11.1 https with a private CA: transport.ssl.ca_file is used for the MCP requests too (no NODE_EXTRA_CA_CERTS)', async () => {
  const config = await d.writeClientConfig('tls', { serverUrl: `${httpsOrigin}/auth`, ssl: { ca_file: serverTls.cert } })
  const { value } = await withClient(['--config', config, '--server-url', `${httpsOrigin}/mcp`, '--quiet'], async (c) => {
    const tools = await c.listTools()
    return { names: tools.tools.map((t) => t.name).sort(), me: JSON.parse(textOf(await c.callTool({ name: 'whoami', arguments: {} }))) as { clientId: string } }
  })
  assert.deepEqual(value.names, ['admin_echo', 'whoami'])
  assert.equal(value.me.clientId, d.client.fingerprint)
})

test('11.1 a server that requires client certificates: cert_file/key_file are presented; without them the app is told to set them', async () => {
  const ok = await d.writeClientConfig('mtls', { serverUrl: `${mtlsOrigin}/auth`, ssl: { ca_file: serverTls.cert, cert_file: clientTls.cert, key_file: clientTls.key } })
  const { value } = await withClient(['--config', ok, '--server-url', `${mtlsOrigin}/mcp`, '--quiet'], async (c) => (await c.listTools()).tools.length)
  assert.equal(value, 2)

  const noCert = await d.writeClientConfig('nocert', { serverUrl: `${mtlsOrigin}/auth`, ssl: { ca_file: serverTls.cert } })
  const r = await connectError(['--config', noCert, '--server-url', `${mtlsOrigin}/mcp`])
  assert.match(r.message, /TLS client certificate .*set transport\.ssl\.cert_file and key_file in .*nocert_config\.yml/)
  assert.match(r.stderr, /^hint: .*requires? a TLS client certificate/m)
  assert.doesNotMatch(r.stderr, /is the server running/)
})

test('11.5 TLS trust and protocol errors say what is wrong, not "is the server running?"', async () => {
  const untrusted = await d.writeClientConfig('untrusted', { serverUrl: `${httpsOrigin}/auth` })
  const a = await connectError(['--config', untrusted, '--server-url', `${httpsOrigin}/mcp`])
  assert.match(a.message, /DEPTH_ZERO_SELF_SIGNED_CERT.*Fix: the server's TLS certificate is not trusted: set transport\.ssl\.ca_file/)
  assert.doesNotMatch(a.stderr, /is the server running/)

  const httpsToHttp = httpOrigin.replace('http:', 'https:')
  const b = await connectError(['--config', untrusted, '--server-url', `${httpsToHttp}/mcp`])
  assert.match(b.stderr, /^error: TLS connection to https:\/\/127\.0\.0\.1:\d+\/auth failed: \S+: the server did not answer in TLS/m)
  assert.match(b.stderr, /^hint: the server at https:\/\/127\.0\.0\.1:\d+\/auth speaks plain http on that port: use http:\/\//m)
  assert.match(b.message, /speaks plain http/)
})

test('11.2 client not on the server allowlist / server key not trusted / nothing listening: the app gets the reason and the fix', async () => {
  const stranger = await d.writeClientConfig('stranger', { serverUrl: `${httpOrigin}/auth`, keyPair: generateKeyPair() })
  const a = await connectError(['--config', stranger, '--server-url', `${httpOrigin}/mcp`])
  assert.match(a.message, /could not connect to http:\/\/127\.0\.0\.1:\d+\/mcp: server refused: .*Fix: the server refused this client key/)
  // 11.5: honest about revoked and expired entries, and points to the audit log.
  assert.match(a.message, /expired .*revoked .*audit log/)
  assert.match(a.stderr, /^hint: the server refused this client key/m)

  const list = new Allowlist()
  await saveAllowlistFile(join(d.dir, 'keys', 'empty_allowlist.json'), list)
  const unpinned = await d.writeClientConfig('unpinned', { serverUrl: `${httpOrigin}/auth`, pinnedFingerprint: null, allowlist: 'empty_allowlist.json' })
  const b = await connectError(['--config', unpinned, '--server-url', `${httpOrigin}/mcp`])
  assert.match(b.message, new RegExp(`server key ${d.server.fingerprint} is not on the client allowlist.*mcp-allowlist add --config .*unpinned_config\\.yml --fingerprint ${d.server.fingerprint}`))

  const port = await closedPort()
  const down = await d.writeClientConfig('down')
  const c = await connectError(['--config', down, '--server-url', `http://127.0.0.1:${port}/mcp`])
  assert.match(c.message, new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}/auth: ECONNREFUSED.*Fix: is the server running at http://127\\.0\\.0\\.1:${port}/auth\\?`))
})

test('11.2 a wrong MCP path: the forwarded initialize is answered with an error naming the URL', async () => {
  const config = await d.writeClientConfig('wrongpath', { serverUrl: `${httpOrigin}/auth` })
  const r = await connectError(['--config', config, '--server-url', `${httpOrigin}/mpc`])
  assert.match(r.message, /HTTP 404.*hint: the server has no MCP endpoint at http:\/\/127\.0\.0\.1:\d+\/mpc: check --server-url/)
})

test('11.6 --server-url pointing at the handshake endpoint is refused up front with the MCP endpoint to use', async () => {
  const config = await d.writeClientConfig('atauth', { serverUrl: `${httpOrigin}/auth` })
  const r = await runProxy(['--config', config, '--server-url', `${httpOrigin}/auth`])
  assert.equal(r.code, 2)
  assert.match(r.stderr, /^error: --server-url http:\/\/127\.0\.0\.1:\d+\/auth is the handshake endpoint, not the MCP endpoint/m)
  assert.match(r.stderr, /^hint: give the MCP endpoint \(usually http:\/\/127\.0\.0\.1:\d+\/mcp\)/m)
})

/** A port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const s = createNetServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const { port } = s.address() as AddressInfo
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

function runProxy(args: string[], input = '', env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PROXY_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(input)
  })
}

test('11.2 a clean exit prints no "SSE stream disconnected: AbortError", with or without --quiet', async () => {
  const config = await d.writeClientConfig('clean', { serverUrl: `${httpOrigin}/auth` })
  const quiet = await withClient(['--config', config, '--server-url', `${httpOrigin}/mcp`, '--quiet'], async (c) => (await c.listTools()).tools.length)
  const loud = proxy(['--config', config, '--server-url', `${httpOrigin}/mcp`])
  const client = new Client({ name: 'desktop-app', version: '1.0.0' })
  await client.connect(loud.transport)
  await client.listTools()
  await client.close()
  for (let i = 0; i < 30 && !/closing/.test(loud.stderr()); i++) await new Promise((r) => setTimeout(r, 100))
  await new Promise((r) => setTimeout(r, 500))
  assert.equal(quiet.stderr, '', 'nothing on stderr with --quiet')
  assert.doesNotMatch(loud.stderr(), /AbortError|aborted/)
  assert.match(loud.stderr(), /stdin closed; closing/)
})

test('11.3 --header (with ${VAR}) and --header-file reach the server on handshake and MCP requests; reserved headers are refused', async () => {
  const config = await d.writeClientConfig('headers', { serverUrl: `${httpOrigin}/auth` })
  const file = join(d.dir, 'headers.txt')
  await writeFile(file, '# extra headers\nX-Tenant: acme\n\nX-From-File: yes\n')
  seenHeaders.length = 0
  await withClient(['--config', config, '--server-url', `${httpOrigin}/mcp`, '--quiet', '--header', 'X-Api-Key: ${API_KEY}', '--header-file', file], async (c) => c.listTools(), { API_KEY: 'k-123' })
  const auth = seenHeaders.filter((h) => h['mcp-session-id'] === undefined && h['x-api-key'] !== undefined)
  assert.ok(auth.length >= 2, 'handshake requests carry the headers')
  const mcp = seenHeaders.filter((h) => h['mcp-session-id'] !== undefined)
  assert.ok(mcp.length >= 1)
  for (const h of [...auth, ...mcp]) {
    assert.equal(h['x-api-key'], 'k-123')
    assert.equal(h['x-tenant'], 'acme')
    assert.equal(h['x-from-file'], 'yes')
  }
  const reserved = await runProxy(['--config', config, '--server-url', `${httpOrigin}/mcp`, '--header', 'Authorization: Bearer x'])
  assert.equal(reserved.code, 2)
  assert.match(reserved.stderr, /the proxy sets Authorization itself/)
  const unset = await runProxy(['--config', config, '--server-url', `${httpOrigin}/mcp`, '--header', 'X-Key: ${NOT_SET_ANYWHERE_42}'])
  assert.equal(unset.code, 2)
  assert.match(unset.stderr, /environment variable NOT_SET_ANYWHERE_42 is not set/)
})

test('11.3 --ignore-tool hides matching tools from tools/list and refuses calls to them', async () => {
  const config = await d.writeClientConfig('ignore', { serverUrl: `${httpOrigin}/auth` })
  const before = calls.admin
  const { value } = await withClient(['--config', config, '--server-url', `${httpOrigin}/mcp`, '--quiet', '--ignore-tool', 'admin*'], async (c) => {
    const names = (await c.listTools()).tools.map((t) => t.name)
    const refused = await c.callTool({ name: 'admin_echo', arguments: { text: 'x' } }).then(
      () => 'called',
      (e: Error) => e.message,
    )
    return { names, refused }
  })
  assert.deepEqual(value.names, ['whoami'])
  assert.match(value.refused, /Tool admin_echo is not available: mcp-pki-proxy hides it \(--ignore-tool\)/)
  assert.equal(calls.admin, before)
})

test('11.3 --debug writes a 0600 log of the connection and message flow, without secrets', async () => {
  const config = await d.writeClientConfig('debug', { serverUrl: `${httpOrigin}/auth` })
  const log = join(d.dir, 'proxy-debug.log')
  await withClient(['--config', config, '--server-url', `${httpOrigin}/mcp`, '--quiet', '--debug', log, '--header', 'X-Secret: s3cr3t'], async (c) => c.listTools())
  for (let i = 0; i < 30 && !/closed/.test(await readFile(log, 'utf8').catch(() => '')); i++) await new Promise((r) => setTimeout(r, 100))
  const text = await readFile(log, 'utf8')
  assert.equal((await stat(log)).mode & 0o777, 0o600)
  assert.match(text, /^\S+Z \[\d+\] start: server http:\/\/127\.0\.0\.1:\d+\/mcp/m)
  assert.match(text, /authenticated to /)
  assert.match(text, /app → server: request tools\/list #\d+/)
  assert.match(text, /server → app: result #\d+/)
  assert.match(text, /extra headers \[x-secret\]/)
  assert.doesNotMatch(text, /s3cr3t|Bearer/)
})

/** A minimal HTTP CONNECT proxy that counts tunnels. */
async function startConnectProxy(): Promise<{ url: string; tunnels: string[]; close(): Promise<void> }> {
  const tunnels: string[] = []
  const server = createHttpServer()
  server.on('connect', (req, socket, head) => {
    tunnels.push(req.url ?? '')
    const [host, port] = (req.url ?? '').split(':')
    const upstream = netConnect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      upstream.write(head)
      upstream.pipe(socket)
      socket.pipe(upstream)
    })
    upstream.on('error', () => socket.destroy())
    socket.on('error', () => upstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, tunnels, close: () => closeServer(server) }
}

test('11.3 HTTPS_PROXY carries handshake and MCP requests through a CONNECT tunnel; NO_PROXY exempts the host', async () => {
  const tunnel = await startConnectProxy()
  try {
    const config = await d.writeClientConfig('viaproxy', { serverUrl: `${httpsOrigin}/auth`, ssl: { ca_file: serverTls.cert } })
    const args = ['--config', config, '--server-url', `${httpsOrigin}/mcp`, '--quiet']
    const { value } = await withClient(args, async (c) => (await c.listTools()).tools.length, { HTTPS_PROXY: tunnel.url })
    assert.equal(value, 2)
    assert.ok(tunnel.tunnels.length >= 1)
    assert.ok(tunnel.tunnels.every((t) => t === new URL(httpsOrigin).host))
    const count = tunnel.tunnels.length
    await withClient(args, async (c) => c.listTools(), { HTTPS_PROXY: tunnel.url, NO_PROXY: '127.0.0.1' })
    assert.equal(tunnel.tunnels.length, count, 'no tunnel for a NO_PROXY host')
  } finally {
    await tunnel.close()
  }
})

test('11.3 --connect-timeout bounds a server that accepts connections and never answers', async () => {
  const silent: NetServer = createNetServer(() => {})
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  try {
    const origin = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`
    const config = await d.writeClientConfig('silent', { serverUrl: `${origin}/auth` })
    const started = Date.now()
    const r = await connectError(['--config', config, '--server-url', `${origin}/mcp`, '--connect-timeout', '1'])
    assert.match(r.message, /no reply from http:\/\/127\.0\.0\.1:\d+\/auth within 1000 ms/)
    assert.ok(Date.now() - started < 15_000)
  } finally {
    silent.close()
  }
})

test('11.4 the documented Inspector command line: the Inspector gets no --config, and what follows -- runs the proxy as written', async () => {
  const doc = await readFile(join(import.meta.dirname, '..', '..', 'docs', 'mcp-proxy.md'), 'utf8')
  const block = /```bash\n(npx -y @modelcontextprotocol\/inspector@[\d.]+ --cli [^`]*? -- \\\n[^`]*?)\n```/.exec(doc)?.[1]
  assert.ok(block, 'docs/mcp-proxy.md shows the one-line Inspector form with --')
  const line = block.replace(/\\\n\s*/g, '')
  const [inspectorPart, proxyPart] = line.split(' -- ') as [string, string]
  // The Inspector parses everything before `--`: the proxy's --config must not be there.
  assert.doesNotMatch(inspectorPart, /--config/)
  assert.match(inspectorPart, /--cli --method tools\/list$/)
  const argv = proxyPart.trim().split(/\s+/)
  assert.deepEqual(argv.slice(0, 2), ['node', 'dist/bin/mcp-pki-proxy.js'])
  assert.equal(argv[2], '--config')
  assert.equal(argv[4], '--server-url')
  // Run exactly that argv (the Inspector spawns it as is), with this test's config and server.
  const config = await d.writeClientConfig('inspector', { serverUrl: `${httpOrigin}/auth` })
  const args = [PROXY_BIN, ...argv.slice(2)].map((a, i, all) => (all[i - 1] === '--config' ? config : all[i - 1] === '--server-url' ? `${httpOrigin}/mcp` : a))
  const transport = new StdioClientTransport({ command: process.execPath, args, stderr: 'pipe' })
  const client = new Client({ name: 'inspector-like', version: '1.0.0' })
  await client.connect(transport)
  try {
    assert.equal((await client.listTools()).tools.length, 2)
  } finally {
    await client.close()
  }
})

test('11.1 the library too: createAuthFetchFromConfig applies ca_file and the client certificate to MCP requests', async () => {
  const config = await d.writeClientConfig('libtls', { serverUrl: `${mtlsOrigin}/auth`, ssl: { ca_file: serverTls.cert, cert_file: clientTls.cert, key_file: clientTls.key } })
  const authFetch = await createAuthFetchFromConfig(config, `${mtlsOrigin}/mcp`, { interactive: false })
  const client = await connectClient(`${mtlsOrigin}/mcp`, authFetch)
  try {
    assert.equal((await client.listTools()).tools.length, 2)
  } finally {
    await client.close()
  }
})
