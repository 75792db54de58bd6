/**
 * The `audience:` line `mcp-pki-server` prints at start. Without `auth.audience` the server accepts
 * this machine's names and addresses on its port, so the example must be one of those: a server
 * bound to every address (`0.0.0.0`, `::`) listens on a URL no client can use as its audience, so
 * the example names the loopback address and the host name instead.
 * @module
 */
import { hostname } from 'node:os'

const WILDCARD_HOSTS = new Set(['0.0.0.0', '[::]'])

/** Origins a local client can use as the audience of a server listening at `authUrl`. */
export function audienceExamples(authUrl: string): string[] {
  const u = new URL(authUrl)
  if (!WILDCARD_HOSTS.has(u.hostname)) return [u.origin]
  const port = u.port === '' ? '' : `:${u.port}`
  const examples = [`${u.protocol}//127.0.0.1${port}`]
  let name = ''
  try {
    name = hostname()
  } catch {
    // no host name: the loopback example remains
  }
  if (name !== '') examples.push(`${u.protocol}//${name.toLowerCase()}${port}`)
  return examples
}

/** The whole `audience: …` line (newline included). */
export function audienceLine(audience: string | readonly string[] | null, authUrl: string, port: number): string {
  if (audience !== null) return `audience: ${(typeof audience === 'string' ? [audience] : audience).join(', ')}\n`
  return (
    `audience: this machine's names and addresses on port ${port} (e.g. ${audienceExamples(authUrl).join(' or ')}); ` +
    'behind a proxy or under another DNS name set auth.audience to the URL clients use\n'
  )
}
