/**
 * A self-contained setup in a folder: both key pairs, both allowlists (each side knows the other),
 * and both config files. Used by the tests; handy for trying the package out. (The demo writes its
 * files step by step instead, to show each command.)
 * @module
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { loadYaml } from '../internal/load-on-use.js'
import { updateAllowlistFile } from '../allowlist/allowlist-file.js'
import { writePrivateKeyFile, writePublicKeyFile } from '../keys/key-file.js'
import { generateKeyPair, type Ed25519KeyPair } from '../keys/key-pair.js'

export type ConfigObject = Record<string, unknown>

export interface SandboxOptions {
  /** Merged over the base server config (deep merge of plain objects). */
  server?: ConfigObject
  /** Merged over the base client config. */
  client?: ConfigObject
  serverMetadata?: Record<string, unknown>
  clientMetadata?: Record<string, unknown>
}

export interface Sandbox {
  dir: string
  serverKey: Ed25519KeyPair
  clientKey: Ed25519KeyPair
  serverConfigPath: string
  clientConfigPath: string
  serverAllowlistPath: string
  clientAllowlistPath: string
  clientPublicKeyPath: string
}

function isPlain(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function deepMerge(base: ConfigObject, over: ConfigObject | undefined): ConfigObject {
  if (!over) return base
  const out: ConfigObject = { ...base }
  for (const [k, v] of Object.entries(over)) {
    const b = out[k]
    out[k] = isPlain(b) && isPlain(v) ? deepMerge(b, v) : v
  }
  return out
}

/** Writes keys, allowlists and configs into `dir` (created if needed). Server port 0 = any free port. */
export async function createSandbox(dir: string, o: SandboxOptions = {}): Promise<Sandbox> {
  await mkdir(join(dir, 'keys'), { recursive: true, mode: 0o700 })
  const serverKey = generateKeyPair()
  const clientKey = generateKeyPair()
  await writePrivateKeyFile(join(dir, 'keys/server_private.pem'), serverKey.privateKey)
  await writePublicKeyFile(join(dir, 'keys/server_public.pem'), serverKey.publicKey)
  await writePrivateKeyFile(join(dir, 'keys/client_private.pem'), clientKey.privateKey)
  await writePublicKeyFile(join(dir, 'keys/client_public.pem'), clientKey.publicKey)
  const serverAllowlistPath = join(dir, 'keys/server_allowlist.json')
  const clientAllowlistPath = join(dir, 'keys/client_allowlist.json')
  await updateAllowlistFile(serverAllowlistPath, (l) => {
    l.add({ publicKeyRaw: clientKey.publicKeyRaw, metadata: o.clientMetadata ?? { role: 'trusted_client', org: 'example_org' } })
  })
  await updateAllowlistFile(clientAllowlistPath, (l) => {
    l.add({ publicKeyRaw: serverKey.publicKeyRaw, metadata: o.serverMetadata ?? { role: 'mcp_server', endpoint: '127.0.0.1' } })
  })
  const server = deepMerge(
    {
      keys: { private_key_path: './keys/server_private.pem', public_key_path: './keys/server_public.pem' },
      acl: { allowlist_path: './keys/server_allowlist.json' },
      auth: { timestamp_tolerance: 300, nonce_cache_size: 10000 },
      audit: { enabled: true, log_file: './logs/server_audit.jsonl', log_level: 'INFO' },
      transport: { type: 'http', host: '127.0.0.1', port: 0 },
    },
    o.server,
  )
  const client = deepMerge(
    {
      keys: { private_key_path: './keys/client_private.pem', public_key_path: './keys/client_public.pem' },
      acl: { allowlist_path: './keys/client_allowlist.json' },
      audit: { enabled: false },
      transport: { timeout: 10, retry_attempts: 0 },
    },
    o.client,
  )
  const serverConfigPath = join(dir, 'server_config.yml')
  const clientConfigPath = join(dir, 'client_config.yml')
  const { stringify } = loadYaml()
  await writeFile(serverConfigPath, stringify(server))
  await writeFile(clientConfigPath, stringify(client))
  return {
    dir,
    serverKey,
    clientKey,
    serverConfigPath,
    clientConfigPath,
    serverAllowlistPath,
    clientAllowlistPath,
    clientPublicKeyPath: join(dir, 'keys/client_public.pem'),
  }
}
