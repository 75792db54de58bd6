/**
 * Starting configurations written by `mcp-config-validate --init server|client FILE`: the
 * README's Quick Start configs with a comment on each section, paths relative to the file's
 * folder (which is how the loader resolves them). Never overwrites a file unless asked to.
 * @module
 */
import { writeFile } from 'node:fs/promises'
import path from 'node:path'

export type ConfigRole = 'server' | 'client'

const SERVER_CONFIG = `# mcp-pki-auth server configuration (written by mcp-config-validate --init server).
# Relative paths resolve against this file's folder. All keys: docs/configuration.md
keys:
  # Make the pair with: mcp-keygen --output-dir ./keys --key-name server
  private_key_path: "./keys/server_private.pem"
  public_key_path: "./keys/server_public.pem"
acl:
  # Clients allowed in. Add one with: mcp-allowlist add --config <this file> --key-file client_public.pem
  allowlist_path: "./keys/server_allowlist.json"
auth:
  timestamp_tolerance: 300
  nonce_cache_size: 10000
  # Several server processes? Share replay protection and revocation through Redis:
  # nonce_store: { type: redis, url: "redis://127.0.0.1:6379", key_prefix: "mcp-pki:" }
audit:
  enabled: true
  log_file: "./logs/server_audit.jsonl"
  log_level: "INFO"
transport:
  # http on loopback; across machines use https (or wss) with a certificate:
  # type: "https"
  # ssl: { cert_file: "./certs/server.crt", key_file: "./certs/server.key" }
  type: "http"
  host: "127.0.0.1"
  port: 8443
`

const CLIENT_CONFIG = `# mcp-pki-auth client configuration (written by mcp-config-validate --init client).
# Relative paths resolve against this file's folder. All keys: docs/configuration.md
keys:
  # Make the pair with: mcp-keygen --output-dir ./keys --key-name client
  private_key_path: "./keys/client_private.pem"
  public_key_path: "./keys/client_public.pem"
acl:
  # Servers this client trusts. Add one with: mcp-allowlist add --config <this file> --key-file server_public.pem
  allowlist_path: "./keys/client_allowlist.json"
servers:
  local:
    url: "http://127.0.0.1:8443/auth"
# For an https server with a private CA, or one that asks for a client certificate (verify_mode):
# transport:
#   ssl: { ca_file: "./certs/ca.crt", cert_file: "./certs/client.crt", key_file: "./certs/client.key" }
`

/** The starting YAML for `role`. */
export function starterConfig(role: ConfigRole): string {
  return role === 'server' ? SERVER_CONFIG : CLIENT_CONFIG
}

/** The role a config file name suggests (`client_config.yml` → client), server otherwise. */
export function roleFromFileName(file: string): ConfigRole {
  return /client/i.test(path.basename(file)) ? 'client' : 'server'
}

/** The commands that follow writing a starting config, for the folder the file is in. */
export function nextSteps(role: ConfigRole, file: string): string[] {
  const dir = path.dirname(file)
  const keys = dir === '.' ? './keys' : path.join(dir, 'keys')
  const peer = role === 'server' ? 'client' : 'server'
  return [
    `mcp-keygen --output-dir ${keys} --key-name ${role}`,
    `mcp-allowlist add --config ${file} --key-file <the ${peer}'s ${peer}_public.pem>`,
    `mcp-config-validate --check-keys --check-allowlist --config ${file}`,
  ]
}

/** Writes the starting config; refuses to replace an existing file unless `force`. */
export async function writeStarterConfig(file: string, role: ConfigRole, force: boolean): Promise<void> {
  await writeFile(file, starterConfig(role), { flag: force ? 'w' : 'wx', mode: 0o644 })
}
