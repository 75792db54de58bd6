/**
 * Extra HTTP headers for `mcp-pki-proxy` (`--header "Name: value"`, repeatable, and
 * `--header-file FILE` with one `Name: value` per line), as mcp-remote takes them.
 *
 * Desktop apps start the proxy without a shell, so `${VAR}` in a value is replaced by that
 * environment variable (`"Authorization-Extra: Bearer ${TOKEN}"` with `"env": {"TOKEN": "…"}`); an
 * unset variable is an error rather than an empty string. Headers the proxy sets itself
 * (Authorization, MCP-PKI-Proof, the MCP session and protocol headers, framing) cannot be given.
 * @module
 */
import { readFile } from 'node:fs/promises'
import { PROOF_HEADER } from '../../protocol/constants.js'
import { UsageError } from './output.js'

const RESERVED = new Set(['authorization', PROOF_HEADER.toLowerCase(), 'mcp-session-id', 'mcp-protocol-version', 'content-type', 'content-length', 'host', 'transfer-encoding', 'connection', 'accept'])
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

function expand(value: string, env: NodeJS.ProcessEnv, where: string): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const v = env[name]
    if (v === undefined) throw new UsageError(`${where}: environment variable ${name} is not set`, `set it in the app's "env" for this server, or remove \${${name}}`)
    return v
  })
}

/** Parses one `Name: value` (spaces around the colon optional). */
export function parseHeader(text: string, where: string, env: NodeJS.ProcessEnv = process.env): [string, string] {
  const colon = text.indexOf(':')
  if (colon <= 0) throw new UsageError(`${where}: a header must look like "Name: value", got ${JSON.stringify(text.slice(0, 80))}`)
  const name = text.slice(0, colon).trim()
  const value = expand(text.slice(colon + 1).trim(), env, where)
  if (!TOKEN.test(name)) throw new UsageError(`${where}: ${JSON.stringify(name)} is not a valid header name`)
  if (RESERVED.has(name.toLowerCase())) throw new UsageError(`${where}: the proxy sets ${name} itself; it cannot be given as an extra header`)
  if (/[\r\n\0]/.test(value)) throw new UsageError(`${where}: the value of ${name} contains a line break or NUL`)
  return [name, value]
}

/** The headers of `--header-file`: one per line; blank lines and lines starting with # are skipped. */
export async function readHeaderFile(path: string, env: NodeJS.ProcessEnv = process.env): Promise<[string, string][]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new UsageError(`--header-file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  const out: [string, string][] = []
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim()
    if (t === '' || t.startsWith('#')) return
    out.push(parseHeader(t, `${path}:${i + 1}`, env))
  })
  return out
}

/** All extra headers: the file's first, then each --header (a later one replaces an earlier one). */
export async function extraHeaders(flags: readonly string[], file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Record<string, string>> {
  const pairs = file === undefined ? [] : await readHeaderFile(file, env)
  for (const f of flags) pairs.push(parseHeader(f, '--header', env))
  const out: Record<string, string> = {}
  for (const [name, value] of pairs) out[name.toLowerCase()] = value
  return out
}
