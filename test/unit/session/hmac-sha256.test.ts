/**
 * The cached-pad HMAC-SHA256 used on the request hot path equals node:crypto's createHmac for keys
 * and messages of many lengths (including keys longer than the 64-byte block), and leaves no pad
 * bytes behind in the caller's buffer.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { hmacInPlace, hmacPads, hmacSha256, newPads, sha256Into, textEqualConstantTime, zeroPads } from '../../../src/internal/hmac-sha256.js'

const KEY_LENGTHS = [0, 1, 2, 16, 31, 32, 33, 55, 63, 64, 65, 100, 128, 129, 200]
const MESSAGE_LENGTHS = [0, 1, 3, 31, 32, 55, 56, 57, 63, 64, 65, 119, 120, 150, 191, 192, 255, 256, 1000, 4096]

test('hmacSha256 equals createHmac for random keys and messages of many lengths', () => {
  for (const kl of KEY_LENGTHS) {
    for (const ml of MESSAGE_LENGTHS) {
      const key = randomBytes(kl)
      const msg = randomBytes(ml)
      assert.equal(hmacSha256(key, msg).toString('hex'), createHmac('sha256', key).update(msg).digest('hex'), `key ${kl} B, message ${ml} B`)
    }
  }
})

test('RFC 4231 test cases 1, 2 and 6 (key longer than a block)', () => {
  const cases: [Buffer, Buffer, string][] = [
    [Buffer.alloc(20, 0x0b), Buffer.from('Hi There'), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    [Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    [Buffer.alloc(131, 0xaa), Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'), '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
  ]
  for (const [key, msg, mac] of cases) assert.equal(hmacSha256(key, msg).toString('hex'), mac)
})

test('hmacInPlace: cached pads reused across many messages; base64url output; the pad area is zeroed after use', () => {
  const key = randomBytes(32)
  const pads = hmacPads(key)
  for (let i = 0; i < 200; i++) {
    const msg = randomBytes(i * 3)
    const buf = Buffer.alloc(64 + msg.byteLength + 10, 0xee)
    msg.copy(buf, 64)
    const mac = hmacInPlace(pads, buf, 64 + msg.byteLength, i % 2 === 0 ? 'base64url' : 'latin1')
    const want = createHmac('sha256', key).update(msg).digest()
    assert.equal(mac, want.toString(i % 2 === 0 ? 'base64url' : 'latin1'))
    assert.ok(buf.subarray(0, 64).every((b) => b === 0), 'inner pad left in the buffer')
    assert.deepEqual(buf.subarray(64, 64 + msg.byteLength), msg, 'message changed')
    assert.ok(buf.subarray(64 + msg.byteLength).every((b) => b === 0xee), 'bytes after the message changed')
  }
})

test('hmacPads writes into a given buffer, and zeroPads clears both pads', () => {
  const key = randomBytes(32)
  const into = newPads()
  const pads = hmacPads(key, into)
  assert.equal(pads, into)
  assert.deepEqual(pads.ipad, hmacPads(key).ipad)
  for (let i = 0; i < 64; i++) {
    assert.equal(pads.ipad[i], (key[i] ?? 0) ^ 0x36)
    assert.equal(pads.opad[i], (key[i] ?? 0) ^ 0x5c)
  }
  zeroPads(pads)
  assert.ok(pads.ipad.every((b) => b === 0) && pads.opad.every((b) => b === 0))
})

test('sha256Into writes the digest of bytes and of UTF-8 strings at the offset', () => {
  for (const data of [randomBytes(0), randomBytes(100), 'héllo ✓ 🔑', '']) {
    const buf = Buffer.alloc(40, 0xff)
    sha256Into(data, buf, 4)
    assert.deepEqual(buf.subarray(4, 36), createHash('sha256').update(data).digest())
    assert.ok(buf.subarray(0, 4).every((b) => b === 0xff) && buf.subarray(36).every((b) => b === 0xff))
  }
})

test('textEqualConstantTime: equal only for the same text; different lengths are unequal', () => {
  const a = randomBytes(32).toString('base64url')
  assert.equal(textEqualConstantTime(a, a.slice()), true)
  for (let i = 0; i < a.length; i++) {
    const b = a.slice(0, i) + (a[i] === 'A' ? 'B' : 'A') + a.slice(i + 1)
    assert.equal(textEqualConstantTime(a, b), false, `differs at ${i}`)
  }
  assert.equal(textEqualConstantTime(a, a.slice(1)), false)
  assert.equal(textEqualConstantTime('', ''), true)
})
