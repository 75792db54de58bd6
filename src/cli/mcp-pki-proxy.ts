#!/usr/bin/env node
/**
 * mcp-pki-proxy — a stdio bridge to an authenticated Streamable HTTP MCP server.
 *
 * An MCP client that can only start a command and speak stdio (desktop apps) runs
 *   mcp-pki-proxy --config client_config.yml --server-url https://host:8443/mcp
 * The proxy authenticates with the client key first (so a wrong or unknown server fails fast with
 * `error: …` on stderr and exit code 1), then relays every JSON-RPC message both ways.
 * stdout carries only MCP messages; every diagnostic goes to stderr.
 * @module
 */
import process from 'node:process'
import { Command } from 'commander'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { loadConfig } from '../config/load-config.js'
import { bridgeTransports, type McpTransport } from '../mcp/bridge.js'
import { createAuthFetchFromConfig } from '../mcp/client.js'
import { safeUrl } from '../transport/http-client.js'
import { configureProgram, runCli, UsageError } from './shared/output.js'
import { printableLines } from '../internal/text.js'

interface ProxyOptions {
  config: string
  serverUrl: string
  authUrl?: string
  quiet?: boolean
}

function buildProgram(): Command {
  return new Command('mcp-pki-proxy')
    .description(
      'Bridge an MCP client that speaks stdio to a Streamable HTTP MCP server protected by mcp-pki-auth.\n' +
        'Authenticates with the client key from --config, verifies the server key (allowlist / pinned fingerprint), then relays every message.\n' +
        'stdout carries only MCP messages; diagnostics go to stderr.',
    )
    .requiredOption('--config <file>', 'client configuration (YAML): key, allowlist of server keys, servers: pins')
    .requiredOption('--server-url <url>', 'the MCP endpoint, e.g. https://host:8443/mcp')
    .option('--auth-url <url>', 'the handshake endpoint (default: /auth on the server URL’s origin)')
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

async function main(): Promise<void> {
  const program = configureProgram(buildProgram())
  program.parse(process.argv)
  const opts = program.opts<ProxyOptions>()
  const serverUrl = parseUrl(opts.serverUrl, '--server-url')
  if (opts.authUrl !== undefined) parseUrl(opts.authUrl, '--auth-url')
  const info = (line: string): void => {
    if (!opts.quiet) process.stderr.write(`mcp-pki-proxy: ${printableLines(line)}\n`)
  }

  const config = await loadConfig(opts.config)
  // stdin carries MCP messages: never prompt on it (trust on first use must be decided in advance).
  const authFetch = await createAuthFetchFromConfig(config, serverUrl, { interactive: false, ...(opts.authUrl === undefined ? {} : { authUrl: opts.authUrl }) })
  const session = await authFetch.session()
  info(`authenticated to ${safeUrl(serverUrl.href)} (server key ${session.serverFingerprint}) as ${session.clientFingerprint}`)

  const remote = new StreamableHTTPClientTransport(serverUrl, { fetch: authFetch })
  const local = new StdioServerTransport()
  const bridge = await bridgeTransports(local as unknown as McpTransport, remote as unknown as McpTransport, {
    name: 'mcp-pki-proxy',
    log: (line) => process.stderr.write(`mcp-pki-proxy: ${printableLines(line)}\n`),
  })

  let stopping = false
  const stop = (why: string): void => {
    if (stopping) return
    stopping = true
    info(`${why}; closing`)
    const done = (): void => {
      // An open SSE response may keep the event loop busy; the bridge is done, so leave.
      setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref()
    }
    remote
      .terminateSession()
      .catch(() => {})
      .then(() => bridge.close())
      .then(done, done)
  }
  process.stdin.once('end', () => stop('stdin closed'))
  process.once('SIGINT', () => stop('interrupted'))
  process.once('SIGTERM', () => stop('terminated'))
  await bridge.closed
  stop('connection closed')
}

void runCli(main)
