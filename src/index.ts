/**
 * mcp-pki-auth: mutual ed25519 authentication for MCP servers and clients.
 *
 * The MCP integration lives in the `mcp-pki-auth/mcp/server` and `mcp-pki-auth/mcp/client`
 * subpaths (also re-exported here; none of them loads the MCP SDK at import time).
 * @module
 */

// Errors
export { AuthError, ConfigError, isAuthError, httpStatusFor, toWireError, PROTOCOL_ERROR_CODES, LOCAL_ERROR_CODES } from './errors.js'
export type { AuthErrorCode, ProtocolErrorCode, LocalErrorCode, AuthErrorOptions, WireError } from './errors.js'

// Keys
export {
  generateKeyPair,
  keyPairFromPrivateKey,
  publicKeyFromRaw,
  privateKeyFromSeed,
  rawPublicKey,
  fingerprintOf,
  opensshFingerprintOf,
  signBytes,
  verifyBytes,
} from './keys/key-pair.js'
export type { Ed25519KeyPair } from './keys/key-pair.js'
export {
  writePrivateKeyFile,
  writePublicKeyFile,
  loadPrivateKeyFile,
  loadPublicKeyFile,
  parsePrivateKey,
  parsePublicKey,
  formatOpenSshPublicKey,
} from './keys/key-file.js'
export type { LoadedPrivateKey, LoadedPublicKey } from './keys/key-file.js'
export { assertUsableEd25519PublicKey, isUsableEd25519PublicKey, ed25519PublicKeyProblem } from './keys/point-check.js'
export type { Ed25519KeyProblem, AssertUsableKeyOptions } from './keys/point-check.js'
export { writeOpenSshPrivateKeyFile, writeOpenSshPublicKeyFile, encodeOpenSshPrivateKey, loadCertificateFile } from './keys/key-file.js'
export type { LoadedCertificate } from './keys/key-file.js'
export {
  verifyOpenSshCertificate,
  parseOpenSshCertificate,
  parseOpenSshCertificateLine,
  certificateRevocationIds,
  CertificateError,
  MAX_CERTIFICATE_SIZE,
} from './keys/openssh-cert.js'
export type {
  OpenSshCertificate,
  VerifyCertificateOptions,
  VerifiedCertificate,
  CertificateFailure,
  CertificateVerification,
  CertificateErrorCode,
} from './keys/openssh-cert.js'
export { createSshAgentSigner, listSshAgentIdentities, SshAgentError } from './keys/ssh-agent.js'
export { createKeyPairSigner } from './keys/signer.js'
export { loadOpenSshKrlFile, parseOpenSshKrl, OpenSshKrl } from './keys/openssh-krl.js'
export { loadClientCredentials } from './keys/client-credentials.js'
export type { ClientCredentials, ClientKeySettings, LoadClientCredentialsOptions } from './keys/client-credentials.js'
export type { Signer, SshAgentSigner, SshAgentSignerOptions, SshAgentErrorCode, AgentIdentity } from './keys/ssh-agent.js'

// Allowlists
export { Allowlist } from './allowlist/allowlist.js'
export { AllowlistHolder, loadAllowlistFile, saveAllowlistFile, updateAllowlistFile, watchAllowlistFile } from './allowlist/allowlist-file.js'
export type { AllowlistEntry, KeyLookup, LookupResult } from './allowlist/types.js'
export { checkClientCertificate, checkServerCertificate, authorizeCertificate } from './allowlist/cert-authority.js'
export type { CertAuthorityEntry, CertAuthorityLookup, ClientCertificateResult, CertificateAuthorizationCode } from './allowlist/cert-authority.js'

// Configuration and audit
export { loadConfig, loadConfigFile, parseConfig, defaultConfig, CONFIG_ENV_VARIABLES } from './config/load-config.js'
export type { Config, ServerEntryConfig } from './config/types.js'
export { AuditLogger } from './audit/audit-logger.js'
export { AUDIT_EVENTS } from './audit/audit-event.js'

// Protocol and handshake engine (no I/O)
export { PROTOCOL_VERSION, PROOF_HEADER } from './protocol/constants.js'
export { parseAuthRequest, parseAuthChallenge, parseAuthResponse, parseAuthComplete, parseAuthError } from './protocol/messages.js'
export type { AuthRequestWire, AuthChallengeWire, AuthResponseWire, AuthCompleteWire, AuthErrorWire } from './protocol/messages.js'
export { createServerHandshake } from './handshake/server-handshake.js'
export type { ServerHandshake, ServerHandshakeOptions, HandshakeResult, ChallengeAnswer } from './handshake/server-handshake.js'
export { externalServerKey } from './handshake/server-key.js'
export type { ServerKey, ExternalServerKey } from './handshake/server-key.js'
export { createClientHandshake, createServerTrust } from './handshake/client-handshake.js'
export type { ClientHandshake, ClientHandshakeOptions, ClientSession, ServerTrust, ServerTrustOptions } from './handshake/client-handshake.js'

// Sessions
export { createSessionVerifier } from './session/session-verifier.js'
export type { SessionInfo, SessionVerifier, SessionVerifierOptions, RequestToVerify, RevocationCheck } from './session/session-verifier.js'
export { createRequestProof, bodyDigest } from './session/session-token.js'
export { deriveTicketKey, ticketKeyFrom, rotatingTicketKeys, staticTicketKeys } from './session/ticket.js'
export type { TicketKey, TicketKeyRing } from './session/ticket.js'

// Stores
export { InMemoryNonceStore } from './nonce/memory-nonce-store.js'
export { RedisNonceStore } from './nonce/redis-nonce-store.js'
export { createNonceStore } from './nonce/index.js'
export type { NonceStore, NonceResult } from './nonce/nonce-store.js'
export { InMemoryRevocationList, RedisRevocationList, KrlRevocation, combineRevocationChecks, watchKrlFile } from './revocation/index.js'
export type { KrlFileWatcher, WatchKrlFileOptions } from './revocation/index.js'
export { RateLimiter } from './ratelimit/token-bucket.js'

// Server and transports
export { createAuthService } from './transport/auth-service.js'
export type { AuthService, AuthServiceOptions, AuthReply, RequestContext, AuthObserver } from './transport/auth-service.js'
export { createAuthServiceFromConfig } from './server/from-config.js'
export { startServerFromConfig } from './server/start-server.js'
export { createAuthHttpHandler, createAuthHttpServer } from './transport/http-server.js'
export { authenticate, authenticateWithConfig } from './transport/http-client.js'
export { createAuthWebSocketServer } from './transport/ws-server.js'
export { authenticateWebSocket } from './transport/ws-client.js'

// Metrics and readiness
export { createAuthMetrics } from './metrics/auth-metrics.js'
export type { AuthMetrics, AuthMetricsOptions } from './metrics/auth-metrics.js'
export { serveMetrics, DEFAULT_METRICS_HOST, DEFAULT_METRICS_PORT } from './metrics/metrics-server.js'
export type { MetricsServer, MetricsServerOptions } from './metrics/metrics-server.js'
export { addGatewayMetrics } from './metrics/gateway-metrics.js'
export type { GatewayMetrics } from './metrics/gateway-metrics.js'
export { createReadiness } from './metrics/readiness.js'
export type { Readiness, ReadinessReport, ReadinessCheck } from './metrics/readiness.js'

// MCP integration
export { createMcpAuth, mountMcpAuth, callerOf, requireRole } from './mcp/server.js'
export { createAuthFetch, createAuthFetchFromConfig } from './mcp/client.js'

// The classes of the original product description
export { KeyManager, ACLManager, AuthenticationEngine } from './compat.js'
