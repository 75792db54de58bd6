/**
 * The MCP SDK (`@modelcontextprotocol/sdk`) is an optional peer dependency of mcp-pki-auth: the
 * library and most CLIs never load it, and an MCP server or client that uses the library already
 * has its own copy (one copy, its version). The two CLIs that speak MCP themselves,
 * `mcp-pki-proxy` and `mcp-pki-gateway`, start through {@link runWithMcpSdk}, which says how
 * to add the SDK when it is missing instead of failing with ERR_MODULE_NOT_FOUND.
 * @module
 */
import { fail } from './output.js'

export const MCP_SDK_PACKAGE = '@modelcontextprotocol/sdk'

/** Whether the SDK resolves from this package's place in node_modules. */
export function mcpSdkInstalled(): boolean {
  try {
    import.meta.resolve(`${MCP_SDK_PACKAGE}/types.js`)
    return true
  } catch {
    return false
  }
}

/** The error and hint printed when `tool` cannot find the SDK. */
export function missingSdkMessage(tool: string): { message: string; hint: string } {
  return {
    message: `${tool} needs the MCP SDK (${MCP_SDK_PACKAGE}), an optional peer dependency of mcp-pki-auth that is not installed`,
    hint:
      `install it next to mcp-pki-auth: npm install ${MCP_SDK_PACKAGE}  ` +
      `(with npx: npx -y -p mcp-pki-auth -p ${MCP_SDK_PACKAGE} ${tool} …)`,
  }
}

/** Loads and runs `tool`'s module when the SDK is present; otherwise prints how to add it (exit 1). */
export async function runWithMcpSdk(tool: string, load: () => Promise<unknown>): Promise<void> {
  if (!mcpSdkInstalled()) {
    const { message, hint } = missingSdkMessage(tool)
    fail(message, hint)
    return
  }
  await load()
}
