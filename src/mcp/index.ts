/**
 * MCP integration (published as `mcp-pki-auth/mcp/server` and `mcp-pki-auth/mcp/client`): protect an SDK server ({@link createMcpAuth}), authenticate
 * an SDK client ({@link createAuthFetch}, plus {@link createAuthProvider} for SDK 2.x), and relay between
 * transports ({@link bridgeTransports}). Nothing here imports the MCP SDK at run time; the types
 * match SDK 1.x (`@modelcontextprotocol/sdk`) and 2.x (`@modelcontextprotocol/server`,
 * `@modelcontextprotocol/client`) structurally.
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
  type McpFetchHandler,
  type McpRequest,
  type McpSessionBindings,
  type MountOptions,
  type NextFunction,
} from './server.js'
export {
  createAuthFetch,
  createAuthFetchFromConfig,
  createAuthProvider,
  type AuthFetch,
  type AuthFetchFromConfigOptions,
  type AuthFetchOptions,
  type FetchFunction,
  type McpAuthProvider,
} from './client.js'
export { bridgeTransports, type Bridge, type BridgeOptions, type JsonRpcMessage, type McpTransport } from './bridge.js'
