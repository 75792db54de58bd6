/**
 * The validated configuration. Field names mirror the YAML keys exactly (snake_case), so a
 * config path in an error message is the same path a user edits.
 * @module
 */

import type { AuthorizationSection } from '../authz/policy-schema.js'

export type TransportType = 'http' | 'https' | 'ws' | 'wss'
export type LogLevel = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR'
export type VerifyMode = 'none' | 'optional' | 'required'
export type SessionBinding = 'proof' | 'bearer'

export interface ServerEntryConfig {
  /** URL of the server's handshake endpoint (http(s)://…/auth or ws(s)://…/ws) or MCP endpoint. */
  url: string
  /** Pinned server fingerprint (hex SHA-256 of its raw public key); refuse any other key. */
  fingerprint: string | null
  /** Audience the client asks for; defaults to the url's origin. */
  audience: string | null
}

export interface Config {
  keys: {
    private_key_path: string
    public_key_path: string
    auto_generate: boolean
    /**
     * OpenSSH certificate for this key (`ssh-keygen -s` writes `<key>-cert.pub`), presented in the
     * handshake so a server trusting the CA accepts the key without listing it; null = none.
     */
    certificate_path: string | null
    /**
     * Sign through the ssh-agent on $SSH_AUTH_SOCK with the key named by public_key_path (or the
     * first ed25519 key it holds): the private key file is not read.
     */
    agent: boolean
    /**
     * Server-key rotation (docs/operations.md): the successor of the server key, announced while
     * this file exists. null = `private_key_path` with `.next` before its `.pem` (or appended).
     */
    next_private_key_path: string | null
    /** The retired server key, still proven to clients that pinned it. null = `.previous` likewise. */
    previous_private_key_path: string | null
  }
  acl: {
    allowlist_path: string
    auto_create: boolean
    metadata_required: boolean
    tofu: {
      enabled: boolean
      prompt_unknown: boolean
      remember_decisions: boolean
    }
  }
  auth: {
    /** Seconds of allowed clock difference between peers. */
    timestamp_tolerance: number
    /** Maximum live entries in the in-memory nonce store; full = refuse (server_busy). */
    nonce_cache_size: number
    /** Seconds a request-proof nonce is remembered (upper bound; entries expire with their window). */
    nonce_cache_ttl: number
    /** Seconds a challenge (message 2) stays valid. */
    challenge_ttl: number
    /** Seconds a session token stays valid. */
    session_ttl: number
    /** `proof` (default): every request carries an HMAC proof. `bearer`: token alone (TLS only). */
    session_binding: SessionBinding
    /** Seconds either side of now a request proof's timestamp may be (in the server's clock). */
    proof_window: number
    /** Most sessions with a live request-sequence window in the in-memory store; full = server_busy. */
    replay_window_sessions: number
    /** Seconds fleet members' clocks may differ: shared (Redis) replay entries live this much longer, twice. */
    fleet_clock_skew: number
    /** Audience this server answers to (its URL or name); null = accept the Host the client used. */
    audience: string | string[] | null
    nonce_store: {
      type: 'memory' | 'redis'
      url: string
      key_prefix: string
      /**
       * The operator's word that this Redis never evicts keys (maxmemory-policy noeviction), for a
       * Redis whose CONFIG command is disabled (managed services). Without it such a Redis is refused.
       */
      eviction_checked: boolean
    }
    /** Optional fleet ticket key (base64url, 32 bytes) instead of one derived from the server key. */
    ticket_key: string | null
    /**
     * Seconds between random, in-memory ticket keys that are forgotten once no session can need
     * them (forward secrecy). null = a key derived from the server key (or ticket_key).
     */
    ticket_key_rotation: number | null
    /**
     * An OpenSSH key revocation list (`ssh-keygen -k`), as sshd's RevokedKeys: client keys and
     * certificates it revokes are refused, and their sessions end. Reloaded when the file changes.
     */
    revoked_keys_file: string | null
    rate_limit: {
      /** Handshake starts allowed per remote address per second (token bucket); 0 = off. */
      per_address: number
      /** Handshake completions allowed per client key per second; 0 = off. */
      per_key: number
      burst: number
    }
  }
  audit: {
    enabled: boolean
    /** null = stdout. */
    log_file: string | null
    log_level: LogLevel
    /** Bytes (YAML accepts "10MB"). */
    max_file_size: number
    backup_count: number
    include_performance: boolean
    /** Empty = all events. */
    filter_events: string[]
  }
  transport: {
    type: TransportType
    host: string
    port: number
    /** Seconds. */
    timeout: number
    max_connections: number
    retry_attempts: number
    /** Seconds. */
    retry_delay: number
    /** Largest accepted handshake body in bytes. */
    max_body_size: number
    /** Processes serving one port (node:cluster); 'auto' = one per core. */
    workers: number | 'auto'
    ssl: {
      cert_file: string | null
      key_file: string | null
      ca_file: string | null
      verify_mode: VerifyMode
    }
  }
  /** Prometheus metrics on a listener of their own (never the public port). */
  metrics: {
    enabled: boolean
    host: string
    port: number
  }
  /** Client side: known servers by name. */
  servers: Record<string, ServerEntryConfig>
  /** Server/gateway: per-tool authorization policy, inline or `policy_file` (docs/authorization.md). */
  authorization?: AuthorizationSection | undefined
}
