#!/usr/bin/env node
/**
 * `mcp-pki-proxy` as installed: checks that the MCP SDK (an optional peer dependency) is there,
 * then runs ../mcp-pki-proxy.js.
 * @module
 */
import { runWithMcpSdk } from '../shared/mcp-sdk.js'

await runWithMcpSdk('mcp-pki-proxy', () => import('../mcp-pki-proxy.js'))
