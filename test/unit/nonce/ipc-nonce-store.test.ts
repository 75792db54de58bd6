/** The worker's IPC view of the primary's replay memory, over an in-process channel pair. */
import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { test } from 'node:test'
import { AuthError } from '../../../src/errors.js'
import { answerNonceQuestion, IpcNonceStore, type IpcChannel } from '../../../src/nonce/ipc-nonce-store.js'
import { InMemoryNonceStore } from '../../../src/nonce/memory-nonce-store.js'

/** A worker channel whose messages the "primary" answers from `store` (or drops when `mute`). */
function pair(store: InMemoryNonceStore, o: { mute?: boolean; epoch?: string } = {}) {
  const worker = new EventEmitter() as EventEmitter & IpcChannel & { connected: boolean }
  worker.connected = true
  worker.send = (message: unknown, callback: (err: Error | null) => void) => {
    if (!worker.connected) {
      callback(new Error('channel closed'))
      return false
    }
    setImmediate(() => {
      callback(null)
      if (o.mute) return
      answerNonceQuestion(store, { send: (reply) => (setImmediate(() => worker.emit('message', o.epoch ? { ...(reply as object), epoch: o.epoch } : reply)), true), isConnected: () => true }, message)
    })
    return true
  }
  return worker
}

function isBusy(err: unknown): boolean {
  return err instanceof AuthError && err.code === 'server_busy'
}

test('two workers share one memory: a nonce or sequence used through one is a replay through the other', async () => {
  const store = new InMemoryNonceStore({ maxEntries: 100 })
  const a = new IpcNonceStore({ channel: pair(store), epoch: store.epoch() })
  const b = new IpcNonceStore({ channel: pair(store), epoch: store.epoch() })
  const exp = Date.now() + 60_000
  assert.equal(await a.checkAndInsert('n1', exp), 'ok')
  assert.equal(await b.checkAndInsert('n1', exp), 'replay')
  assert.equal(await a.checkSequence('s1', 1, exp, store.epoch()), 'ok')
  assert.equal(await b.checkSequence('s1', 1, exp, store.epoch()), 'replay')
  assert.equal(await b.checkSequence('s1', 2, exp, store.epoch()), 'ok')
  assert.equal(await a.checkSequence('s1', 3, exp, 'AAAAAAAAAAA'), 'stale')
  assert.equal(a.epoch(), store.epoch())
  assert.equal(await a.size(), 1)
  a.close()
  b.close()
  store.close()
})

test('fails closed with server_busy: no answer in time, a closed channel, an answer for another epoch', async () => {
  const store = new InMemoryNonceStore({ maxEntries: 100 })
  const silent = new IpcNonceStore({ channel: pair(store, { mute: true }), epoch: store.epoch(), timeoutMs: 100 })
  // The store's sweep timer is unref'd (a server's socket keeps a worker alive); here a timer does.
  const alive = setTimeout(() => undefined, 10_000)
  await assert.rejects(silent.checkSequence('s', 1, Date.now() + 1000, store.epoch()), isBusy)
  clearTimeout(alive)
  assert.equal(store.sessionWindows(), 0)
  silent.close()

  const channel = pair(store)
  const closed = new IpcNonceStore({ channel, epoch: store.epoch() })
  channel.connected = false
  await assert.rejects(closed.checkAndInsert('n', Date.now() + 1000), isBusy)
  closed.close()

  const other = new IpcNonceStore({ channel: pair(store, { epoch: 'BBBBBBBBBBB' }), epoch: store.epoch() })
  await assert.rejects(other.checkAndInsert('n2', Date.now() + 1000), isBusy)
  other.close()

  const pending = pair(store, { mute: true })
  const dropped = new IpcNonceStore({ channel: pending, epoch: store.epoch() })
  const waiting = dropped.checkAndInsert('n3', Date.now() + 1000)
  pending.emit('disconnect')
  await assert.rejects(waiting, isBusy)
  dropped.close()
  store.close()
})

test('questions asked in one turn travel as one IPC message, and each gets its own answer', async () => {
  const store = new InMemoryNonceStore({ maxEntries: 100 })
  const channel = pair(store)
  let messages = 0
  const send = channel.send.bind(channel)
  channel.send = (m, cb) => (messages++, send(m, cb))
  const ipc = new IpcNonceStore({ channel, epoch: store.epoch() })
  const exp = Date.now() + 60_000
  const results = await Promise.all([1, 2, 2, 3, 1].map((seq) => ipc.checkSequence('s', seq, exp, store.epoch())))
  assert.deepEqual(results, ['ok', 'ok', 'replay', 'ok', 'replay'])
  assert.equal(messages, 1)
  ipc.close()
  store.close()
})
