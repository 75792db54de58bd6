/**
 * MCP integration (published as `mcp-pki-auth/mcp/server` and `mcp-pki-auth/mcp/client`): protect an SDK server ({@link createMcpAuth}), authenticate
 * an SDK client ({@link createAuthFetch}), and relay between transports ({@link bridgeTransports}).
 * Nothing here imports the MCP SDK at run time; the types match SDK 1.x and 2.x structurally.
 * @module
 */
export {
  authInfoFromSession,
  callerOf,
  createMcpAuth,
  defaultScopesOf,
  HttpError,
  McpForbiddenError,
  mountMcpAuth,
  requireRole,
  type AuthenticatedRequest,
  type ExpressLike,
  type McpAuth,
  type McpAuthInfo,
  type McpAuthOptions,
  type McpCaller,
  type McpRequest,
  type McpSessionBindings,
  type MountOptions,
  type NextFunction,
} from './server.js'
export { createAuthFetch, createAuthFetchFromConfig, type AuthFetch, type AuthFetchFromConfigOptions, type AuthFetchOptions, type FetchFunction } from './client.js'
export { bridgeTransports, type Bridge, type BridgeOptions, type JsonRpcMessage, type McpTransport } from './bridge.js'
