/** The stateless revision's standard headers the proxy derives from a request body (issue 11.3). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { encodeHeaderValue, standardHeadersFor } from '../../src/mcp/standard-headers.js'

const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} }

test('a stateless tools/call gets MCP-Protocol-Version, Mcp-Method and Mcp-Name; names outside printable ASCII are base64-wrapped', () => {
  const call = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'whoami', arguments: {}, _meta: meta } })
  assert.deepEqual(standardHeadersFor(call), { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': 'whoami' })
  const read = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'file:///ä.txt', _meta: meta } })
  assert.equal(standardHeadersFor(read)?.['mcp-name'], `=?base64?${Buffer.from('file:///ä.txt').toString('base64')}?=`)
  assert.equal(encodeHeaderValue(' padded'), `=?base64?${Buffer.from(' padded').toString('base64')}?=`)
  const list = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list', params: { _meta: meta } })
  assert.deepEqual(standardHeadersFor(list), { 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/list' })
})

test('older-revision requests, notifications, responses and non-JSON bodies get nothing', () => {
  assert.equal(standardHeadersFor(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18' } })), undefined)
  assert.equal(standardHeadersFor(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { _meta: meta } })), undefined)
  assert.equal(standardHeadersFor(JSON.stringify({ jsonrpc: '2.0', id: 1, result: {} })), undefined)
  assert.equal(standardHeadersFor('[1,2]'), undefined)
  assert.equal(standardHeadersFor('{not json'), undefined)
  assert.equal(standardHeadersFor(undefined), undefined)
})
