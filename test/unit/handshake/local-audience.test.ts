import { test } from 'node:test'
import assert from 'node:assert/strict'
import { hostname, networkInterfaces } from 'node:os'
import { canonicalIp, localHostNames, namesThisServer } from '../../../src/handshake/local-audience.js'

test('namesThisServer: loopback names, the host name and interface addresses on the local port', () => {
  for (const a of ['http://127.0.0.1:8080', 'http://localhost:8080/auth', 'https://LocalHost:8080', 'ws://[::1]:8080', 'wss://127.0.0.1:8080/ws', `http://${hostname()}:8080`]) {
    assert.equal(namesThisServer(a, 8080), true, a)
  }
  const v4 = Object.values(networkInterfaces()).flat().find((i) => i?.family === 'IPv4' && !i.internal)
  if (v4) assert.equal(namesThisServer(`http://${v4.address}:8080`, 8080), true, v4.address)
})

test('namesThisServer: default ports follow the scheme', () => {
  assert.equal(namesThisServer('http://localhost', 80), true)
  assert.equal(namesThisServer('ws://localhost', 80), true)
  assert.equal(namesThisServer('https://localhost', 443), true)
  assert.equal(namesThisServer('wss://localhost', 443), true)
  assert.equal(namesThisServer('https://localhost', 80), false)
  assert.equal(namesThisServer('http://localhost', 443), false)
})

test('namesThisServer: other hosts, other ports, other schemes, credentials and non-URLs are refused', () => {
  for (const a of ['https://other.example:8080', 'http://127.0.0.1:8081', 'http://10.255.255.254:8080', 'ftp://localhost:8080', 'file:///etc/passwd', 'http://user:pw@localhost:8080', 'localhost:8080', '', 'x', 'http://localhost.evil.example:8080']) {
    assert.equal(namesThisServer(a, 8080), false, a)
  }
})

test('namesThisServer: extra names (the configured listen host) count as this machine', () => {
  assert.equal(namesThisServer('https://mcp.internal:8443', 8443), false)
  assert.equal(namesThisServer('https://mcp.internal:8443', 8443, new Set(['mcp.internal'])), true)
})

test('localHostNames: cached, and always holds the loopback names', () => {
  const a = localHostNames()
  assert.ok(a.has('localhost') && a.has('127.0.0.1') && a.has('[::1]'))
  assert.equal(localHostNames(), a)
})

test('namesThisServer with the socket local address: IP literals must be that address; localhost only on loopback', () => {
  assert.equal(namesThisServer('http://127.0.0.1:8080', 8080, undefined, '127.0.0.1'), true)
  assert.equal(namesThisServer('http://127.0.0.1:8080', 8080, undefined, '::ffff:127.0.0.1'), true, 'IPv4-mapped socket address')
  assert.equal(namesThisServer('http://[::1]:8080', 8080, undefined, '127.0.0.1'), false, 'another address of this machine')
  assert.equal(namesThisServer('http://[::1]:8080', 8080, undefined, '::1'), true)
  assert.equal(namesThisServer('http://[0:0::1]:8080', 8080, undefined, '::1'), true)
  assert.equal(namesThisServer('http://localhost:8080', 8080, undefined, '127.0.0.1'), true)
  assert.equal(namesThisServer('http://localhost:8080', 8080, undefined, '::1'), true)
  assert.equal(namesThisServer('http://localhost:8080', 8080, undefined, '192.0.2.10'), false, 'localhost is not a remote socket')
  assert.equal(namesThisServer('http://192.0.2.10:8080', 8080, undefined, '192.0.2.10'), true)
  assert.equal(namesThisServer('http://[::ffff:127.0.0.1]:8080', 8080, undefined, '127.0.0.1'), true, 'the same IPv4 address, mapped')
  assert.equal(namesThisServer(`http://${hostname()}:8080`, 8080, undefined, '192.0.2.10'), true, 'the host name')
})

test('canonicalIp', () => {
  assert.equal(canonicalIp('127.0.0.1'), '127.0.0.1')
  assert.equal(canonicalIp('::ffff:10.1.2.3'), '10.1.2.3')
  assert.equal(canonicalIp('[::1]'), '[::1]')
  assert.equal(canonicalIp('0:0:0:0:0:0:0:1'), '[::1]')
  assert.equal(canonicalIp('fe80::1%eth0'), '[fe80::1]')
  assert.equal(canonicalIp('[::ffff:7f00:1]'), '127.0.0.1')
  assert.equal(canonicalIp('localhost'), undefined)
})
