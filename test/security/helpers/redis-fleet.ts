/**
 * Fleets on Redis for revocation and secret-handling tests: sandboxes whose nonce store (and so
 * revocation list) is Redis under a key prefix of their own, mcp-pki-server's stack with MCP routes,
 * and the built `mcp-allowlist` run as an operator would (optionally on a machine whose clock is off).
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import type * as http from 'node:http'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { PassThrough } from 'node:stream'
import { pathToFileURL } from 'node:url'
import { AuditLogger } from '../../../src/audit/audit-logger.js'
import { loadConfig } from '../../../src/config/load-config.js'
import { createMcpAuth, type McpAuth, type McpRequest } from '../../../src/mcp/server.js'
import { RedisRevocationList } from '../../../src/revocation/redis-revocation-list.js'
import { createSandbox, type ConfigObject, type Sandbox } from '../../../src/server/sandbox.js'
import { startServerFromConfig, type RunningServer } from '../../../src/server/start-server.js'
import { REDIS_URL, deletePrefix, uniquePrefix } from '../../integration/redis-helpers.js'
import { onCleanup } from './cleanup.js'
import { quiet } from './loopback-http.js'
import type { HostPort } from './session-calls.js'

const ALLOWLIST_CLI = resolve(import.meta.dirname, '..', '..', '..', 'dist', 'bin', 'mcp-allowlist.js')

let root: string | undefined
async function workDir(): Promise<string> {
  if (root === undefined) {
    const dir = await mkdtemp(join(tmpdir(), 'mcp-security-fleet-'))
    root = dir
    onCleanup(() => rm(dir, { recursive: true, force: true }))
  }
  return root
}
let dirs = 0

/** An audit logger whose JSON lines are kept in `lines`. */
export function capturingAudit(): { audit: AuditLogger; lines: () => string } {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (d: Buffer) => (text += d.toString()))
  return { audit: new AuditLogger({ enabled: true, log_file: null, log_level: 'DEBUG', stream }), lines: () => text }
}

export const NO_LIMITS: ConfigObject = { rate_limit: { per_address: 0, per_key: 0 } }

export interface Fleet {
  sb: Sandbox
  prefix: string
  redisUrl: string
}

/** A sandbox whose server uses Redis (`redisUrl`, the shared one by default) under a prefix of its own. */
export async function redisFleet(o: { redisUrl?: string; server?: ConfigObject } = {}): Promise<Fleet> {
  const redisUrl = o.redisUrl ?? REDIS_URL
  const prefix = uniquePrefix('rt4')
  if (redisUrl === REDIS_URL) onCleanup(() => deletePrefix(prefix))
  const sb = await createSandbox(join(await workDir(), `f${dirs++}`), {
    server: { audit: { enabled: false }, auth: { ...NO_LIMITS, nonce_store: { type: 'redis', url: redisUrl, key_prefix: prefix } }, ...o.server },
  })
  return { sb, prefix, redisUrl }
}

export interface FleetFront extends HostPort {
  running: RunningServer
  mcpAuth: McpAuth
  /** Times the /mcp handlers ran. */
  reached: () => number
}

/**
 * mcp-pki-server's stack (startServerFromConfig: /auth, /health, /ws) with MCP routes on the same
 * port: `/mcp` → mcpAuth.protect, `/mcp-fetch` → mcpAuth.protectFetch.
 */
export async function startFront(sb: Sandbox, o: { audit?: AuditLogger } = {}): Promise<FleetFront> {
  const config = await loadConfig(sb.serverConfigPath, { env: {} })
  let reached = 0
  const routes = new Map<string, http.RequestListener>()
  const running = await startServerFromConfig(config, {
    audit: o.audit ?? quiet(),
    allowlistPollMs: 100,
    fallback: (req, res) => {
      const route = routes.get((req.url ?? '').split('?')[0]!)
      if (route !== undefined) route(req, res)
      else res.writeHead(404).end()
    },
  })
  onCleanup(() => running.close())
  const mcpAuth = createMcpAuth(running.configured.service)
  routes.set(
    '/mcp',
    mcpAuth.protect((req: McpRequest, res) => {
      reached++
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ reached: true, client: req.auth?.clientId }))
    }),
  )
  routes.set(
    '/mcp-fetch',
    mcpAuth.protectFetch((_request, info) => {
      reached++
      return Response.json({ reached: true, client: info.clientId })
    }),
  )
  return { running, mcpAuth, host: running.address.address, port: running.address.port, reached: () => reached }
}

export interface CliRun {
  status: number | null
  stdout: string
  stderr: string
}

/** Runs the built mcp-allowlist in `dir`; `skewMs` moves the child's clock (as on another machine). */
export async function allowlistCli(dir: string, args: string[], o: { skewMs?: number; env?: Record<string, string> } = {}): Promise<CliRun> {
  assert.ok(existsSync(ALLOWLIST_CLI), `${ALLOWLIST_CLI} is missing: build first (npx tsc -p tsconfig.json)`)
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MCP_') && k !== 'NODE_OPTIONS') env[k] = v
  Object.assign(env, o.env)
  const pre: string[] = []
  if (o.skewMs !== undefined) {
    const file = join(await workDir(), 'skew-clock.mjs')
    if (!existsSync(file)) await writeFile(file, 'const off = Number(process.env.RT4_SKEW_MS)\nconst real = Date.now\nDate.now = () => real() + off\n')
    env.RT4_SKEW_MS = String(o.skewMs)
    pre.push('--import', pathToFileURL(file).href)
  }
  return await new Promise((resolveRun) => {
    execFile(process.execPath, [...pre, ALLOWLIST_CLI, ...args], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const status = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null
      resolveRun({ status, stdout, stderr })
    })
  })
}

export function cliOk(r: CliRun): CliRun {
  assert.equal(r.status, 0, `exit 0 expected; stdout: ${r.stdout} stderr: ${r.stderr}`)
  return r
}

/** A RedisRevocationList on `prefix`, loaded (closed after the file's tests). */
export async function listAt(prefix: string, redisUrl = REDIS_URL): Promise<RedisRevocationList> {
  const list = new RedisRevocationList({ redis: redisUrl, keyPrefix: prefix })
  onCleanup(() => list.close())
  await list.ready()
  return list
}
