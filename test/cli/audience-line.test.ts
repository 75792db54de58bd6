/**
 * Issue 11.5: the server's start line must not offer `https://0.0.0.0:8443` (which the default
 * audience check refuses) as the audience example; every example it prints must be accepted.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { audienceExamples, audienceLine } from '../../src/cli/shared/audience-line.js'
import { namesThisServer } from '../../src/handshake/local-audience.js'

test('a server bound to every address offers only audiences its own check accepts', () => {
  for (const url of ['https://0.0.0.0:8443/auth', 'http://[::]:8443/auth']) {
    const examples = audienceExamples(url)
    assert.ok(examples.length >= 1)
    for (const e of examples) {
      assert.doesNotMatch(e, /0\.0\.0\.0|\[::\]/)
      assert.equal(namesThisServer(e, 8443), true, `${e} must be accepted as this server's audience`)
    }
    assert.equal(namesThisServer(new URL(url).origin, 8443), false, 'the wildcard itself is refused (why it must not be offered)')
  }
  const line = audienceLine(null, 'https://0.0.0.0:8443/auth', 8443)
  assert.match(line, /^audience: this machine's names and addresses on port 8443 \(e\.g\. https:\/\/127\.0\.0\.1:8443 or https:\/\/\S+:8443\);/)
  assert.doesNotMatch(line, /0\.0\.0\.0/)
})

test('a server bound to one address offers that origin; a configured audience is printed as is', () => {
  assert.deepEqual(audienceExamples('http://127.0.0.1:9000/auth'), ['http://127.0.0.1:9000'])
  assert.equal(audienceLine(['https://a.example', 'https://b.example'], 'http://127.0.0.1:9000/auth', 9000), 'audience: https://a.example, https://b.example\n')
})
