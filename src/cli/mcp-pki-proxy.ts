#!/usr/bin/env node
/**
 * mcp-pki-proxy — a stdio bridge to an authenticated Streamable HTTP MCP server.
 *
 * An MCP client that can only start a command and speak stdio (desktop apps) runs
 *   mcp-pki-proxy --config client_config.yml --server-url https://host:8443/mcp
 * The proxy authenticates with the client key first. If that fails (unknown client key, server key
 * not trusted, wrong URL, TLS trouble …) it prints `error: …` and `hint: …` on stderr, answers the
 * app's first request with a JSON-RPC error carrying the same text, and exits 1. Otherwise it
 * relays every JSON-RPC message both ways; a request that cannot be forwarded is answered with a
 * JSON-RPC error with a hint. Every request — handshake and MCP — goes through one fetch with the
 * config's `transport.ssl` (CA, client certificate), `HTTPS_PROXY`/`NO_PROXY` and the timeouts.
 * stdout carries only MCP messages; every diagnostic goes to stderr (and to the --debug log).
 * @module
 */
import process from 'node:process'
import { Command } from 'commander'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { loadConfig } from '../config/load-config.js'
import type { Config } from '../config/types.js'
import { isAuthError } from '../errors.js'
import { printableLines } from '../internal/text.js'
import { bridgeTransports, type JsonRpcMessage, type McpTransport } from '../mcp/bridge.js'
import { createAuthFetchFromConfig, type AuthFetch } from '../mcp/client.js'
import { createHttpFetch, type HttpFetch } from '../mcp/http-fetch.js'
import { answerWithError } from '../mcp/refusal.js'
import { withStandardHeaders } from '../mcp/standard-headers.js'
import { createToolFilter } from '../mcp/tool-filter.js'
import { safeUrl } from '../transport/http-client.js'
import { tlsClientSettingsFromConfig } from '../transport/tls.js'
import { defaultDebugLogPath, openDebugLog, summarize, type DebugLog } from './shared/debug-log.js'
import { describeError, hintFor, type HintContext } from './shared/hints.js'
import { configureProgram, fail, runCli, UsageError } from './shared/output.js'
import { extraHeaders } from './shared/proxy-headers.js'

interface ProxyOptions {
  config: string
  serverUrl: string
  authUrl?: string
  quiet?: boolean
  header: string[]
  headerFile?: string
  debug?: string | true
  connectTimeout?: string
  requestTimeout?: string
  ignoreTool: string[]
}

const collect = (value: string, previous: string[]): string[] => [...previous, value]

function buildProgram(): Command {
  return new Command('mcp-pki-proxy')
    .description(
      'Bridge an MCP client that speaks stdio to a Streamable HTTP MCP server protected by mcp-pki-auth.\n' +
        'Authenticates with the client key from --config, verifies the server key (allowlist / pinned fingerprint), then relays every message.\n' +
        'stdout carries only MCP messages; diagnostics go to stderr. HTTPS_PROXY / HTTP_PROXY / NO_PROXY are honoured.',
    )
    .requiredOption('--config <file>', 'client configuration (YAML): key, allowlist of server keys, servers: pins, transport.ssl')
    .requiredOption('--server-url <url>', 'the MCP endpoint, e.g. https://host:8443/mcp')
    .option('--auth-url <url>', 'the handshake endpoint (default: /auth on the server URL’s origin)')
    .option('--header <header>', 'extra HTTP header "Name: value" on every request (repeatable; ${VAR} is read from the environment)', collect, [])
    .option('--header-file <file>', 'extra headers from a file, one "Name: value" per line')
    .option('--connect-timeout <seconds>', 'seconds to connect and run the handshake (default: transport.timeout of the config)')
    .option('--request-timeout <seconds>', 'seconds to wait for the server to start answering an MCP request (default 300)')
    .option('--ignore-tool <pattern>', 'hide tools matching the pattern (* = any characters) from tools/list and refuse calls to them (repeatable)', collect, [])
    .option('--debug [file]', 'write a timestamped debug log (default ~/.mcp-pki/proxy-<hash>-debug.log)')
    .option('--quiet', 'no informational lines on stderr (errors are still printed)')
}

function parseUrl(value: string, flag: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new UsageError(`${flag} must be an absolute URL, got ${JSON.stringify(value)}`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`${flag} must be an http:// or https:// URL`)
  return url
}

function seconds(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined
  const n = Number(text)
  if (!Number.isFinite(n) || n <= 0 || n > 86_400) throw new UsageError(`${flag} must be a number of seconds from 0 to 86400, got ${JSON.stringify(text)}`)
  return n * 1000
}

/** Refuses `--server-url …/auth` up front: the MCP messages would go to the handshake endpoint. */
function checkEndpoints(serverUrl: URL, authUrl: string): void {
  if (serverUrl.href !== new URL(authUrl).href) return
  throw new UsageError(
    `--server-url ${safeUrl(serverUrl.href)} is the handshake endpoint, not the MCP endpoint`,
    `give the MCP endpoint (usually ${safeUrl(new URL('/mcp', serverUrl).href)}); the handshake endpoint is found by itself or given with --auth-url`,
  )
}

interface Output {
  info(line: string): void
  problem(line: string): void
  debug: DebugLog | undefined
}

function makeOutput(opts: ProxyOptions, serverUrl: URL): Output {
  const debug = opts.debug === undefined ? undefined : openDebugLog(opts.debug === true ? defaultDebugLogPath(serverUrl.href) : opts.debug)
  return {
    debug,
    info(line) {
      debug?.write(line)
      if (!opts.quiet) process.stderr.write(`mcp-pki-proxy: ${printableLines(line)}\n`)
    },
    problem(line) {
      debug?.write(line)
      process.stderr.write(`mcp-pki-proxy: ${printableLines(line)}\n`)
    },
  }
}

async function connect(config: Config, serverUrl: URL, opts: ProxyOptions, http: HttpFetch): Promise<AuthFetch> {
  const connectMs = seconds(opts.connectTimeout, '--connect-timeout')
  const authFetch = await createAuthFetchFromConfig(config, serverUrl, {
    // stdin carries MCP messages: never prompt on it (trust on first use must be decided in advance).
    interactive: false,
    configFile: opts.config, // a verified server-key rotation moves the pin there
    fetch: http,
    mcpFetch: http,
    ...(connectMs === undefined ? {} : { timeoutMs: connectMs }),
    ...(opts.authUrl === undefined ? {} : { authUrl: opts.authUrl }),
  })
  await authFetch.session()
  return authFetch
}

/** Prints the failure with its hint, tells the app the same in a JSON-RPC error, exit 1. */
async function refuse(err: unknown, ctx: HintContext, out: Output): Promise<void> {
  const message = describeError(err)
  const hint = hintFor(err, ctx)
  out.debug?.write(`could not connect: ${message}${hint === undefined ? '' : ` (hint: ${hint})`}`)
  fail(message, hint)
  const code = isAuthError(err) ? err.code : 'connect_failed'
  await answerWithError(new StdioServerTransport() as unknown as McpTransport, {
    message: `mcp-pki-proxy could not connect to ${safeUrl(ctx.mcpUrl ?? ctx.url)}: ${message}${hint === undefined ? '' : `. Fix: ${hint}`}`,
    data: { code, ...(hint === undefined ? {} : { hint }) },
  })
}

async function main(): Promise<void> {
  const program = configureProgram(buildProgram())
  program.parse(process.argv)
  const opts = program.opts<ProxyOptions>()
  const serverUrl = parseUrl(opts.serverUrl, '--server-url')
  const authUrl = opts.authUrl === undefined ? new URL('/auth', serverUrl).href : parseUrl(opts.authUrl, '--auth-url').href
  checkEndpoints(serverUrl, authUrl)
  const requestMs = seconds(opts.requestTimeout, '--request-timeout')
  const connectMs = seconds(opts.connectTimeout, '--connect-timeout')
  const headers = await extraHeaders(opts.header, opts.headerFile)
  const filter = createToolFilter(opts.ignoreTool)
  const out = makeOutput(opts, serverUrl)
  out.debug?.write(`start: server ${safeUrl(serverUrl.href)}, auth ${safeUrl(authUrl)}, extra headers [${Object.keys(headers).join(', ')}], ignore-tool [${opts.ignoreTool.join(', ')}]`)

  const config = await loadConfig(opts.config)
  const ctx: HintContext = { config: opts.config, publicKeyPath: config.keys.public_key_path, url: authUrl, mcpUrl: serverUrl.href }
  const http = await createHttpFetch({
    ...tlsClientSettingsFromConfig(config),
    headers,
    ...(connectMs === undefined ? {} : { connectTimeoutMs: connectMs }),
    ...(requestMs === undefined ? {} : { requestTimeoutMs: requestMs }),
  })
  let authFetch: AuthFetch
  try {
    authFetch = await connect(config, serverUrl, opts, http)
  } catch (err) {
    await refuse(err, ctx, out)
    await http.close().catch(() => {})
    return
  }
  const session = await authFetch.session()
  out.info(`authenticated to ${safeUrl(serverUrl.href)} (server key ${session.serverFingerprint}) as ${session.clientFingerprint}`)
  await relay(authFetch, serverUrl, ctx, out, filter, http)
}

async function relay(authFetch: AuthFetch, serverUrl: URL, ctx: HintContext, out: Output, filter: ReturnType<typeof createToolFilter>, http: HttpFetch): Promise<void> {
  const remote = new StreamableHTTPClientTransport(serverUrl, { fetch: withStandardHeaders(authFetch) })
  const local = new StdioServerTransport()
  const debug = out.debug
  const bridge = await bridgeTransports(local as unknown as McpTransport, remote as unknown as McpTransport, {
    name: 'mcp-pki-proxy',
    log: out.problem,
    explain: (err) => {
      const hint = hintFor(err, ctx)
      return `${describeError(err)}${hint === undefined ? '' : ` (hint: ${hint})`}`
    },
    fromClient: (m: JsonRpcMessage) => {
      debug?.write(`app → server: ${summarize(m)}`)
      return filter.refuse(m)
    },
    fromServer: (m: JsonRpcMessage) => {
      debug?.write(`server → app: ${summarize(m)}`)
      return filter.filter(m)
    },
  })

  let stopping = false
  const stop = (why: string): void => {
    if (stopping) return
    stopping = true
    out.info(`${why}; closing`)
    bridge.beginClose()
    const done = (): void => {
      out.debug?.write('closed')
      // An open SSE response may keep the event loop busy; the bridge is done, so leave.
      setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref()
    }
    remote
      .terminateSession()
      .catch(() => {})
      .then(() => bridge.close())
      .then(() => http.close())
      .then(done, done)
  }
  process.stdin.once('end', () => stop('stdin closed'))
  process.once('SIGINT', () => stop('interrupted'))
  process.once('SIGTERM', () => stop('terminated'))
  await bridge.closed
  stop('connection closed')
}

void runCli(main)
