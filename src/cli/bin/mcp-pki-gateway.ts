#!/usr/bin/env node
/**
 * `mcp-pki-gateway` as installed: checks that the MCP SDK (an optional peer dependency) is there,
 * then runs ../mcp-pki-gateway.js.
 * @module
 */
import { runWithMcpSdk } from '../shared/mcp-sdk.js'

await runWithMcpSdk('mcp-pki-gateway', () => import('../mcp-pki-gateway.js'))
