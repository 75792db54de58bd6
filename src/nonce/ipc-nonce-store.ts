/**
 * The replay memory of a `--workers N` server: ONE in-memory store in the primary process, asked
 * by every worker over the cluster IPC channel. A nonce or request sequence used on one worker is
 * therefore refused on every other, exactly as with one process (or one Redis for a fleet).
 *
 *   worker → primary  { mcpPkiNonce: 1, batch: [question, …] }
 *     question        { id, op: 'nonce', key: nonce,     n: expiresAt, epoch? }
 *                     { id, op: 'seq',   key: sessionId, n: sequence, forgetAt, epoch }
 *                     { id, op: 'size' }
 *   primary → worker  { mcpPkiNonce: 1, epoch, answers: [[id, result], …] }   result: 'ok'|'replay'|'full'|'stale'|number
 *
 * Questions asked in the same turn of the worker's event loop travel as one message (and their
 * answers as one): under load that divides the IPC messages, and the primary's wake-ups, by the
 * number of requests in flight.
 *
 * The epoch is the primary store's: given to each worker when it is forked (so `epoch()` stays
 * synchronous) and repeated in every reply. Workers die with their primary, so a new primary —
 * a new memory — always comes with new workers and a new epoch.
 *
 * Fail closed: no reply within `timeoutMs`, a closed channel or a malformed reply rejects with
 * `AuthError('server_busy')` (HTTP 503, Retry-After 1); nothing is ever accepted unchecked.
 * @module
 */
import { AuthError } from '../errors.js'
import type { NonceResult, NonceStore } from './nonce-store.js'

/** Marks this module's messages among everything else sent on the channel. */
const TAG = 'mcpPkiNonce'
const RESULTS: ReadonlySet<unknown> = new Set(['ok', 'replay', 'full', 'stale'])
const MAX_KEY = 512

/** The worker's end of the channel: `process` in a cluster worker. */
export interface IpcChannel {
  send(message: unknown, callback: (err: Error | null) => void): boolean
  on(event: 'message', listener: (message: unknown) => void): unknown
  on(event: 'disconnect', listener: () => void): unknown
  off(event: 'message', listener: (message: unknown) => void): unknown
  readonly connected: boolean
}

export interface IpcNonceStoreOptions {
  channel: IpcChannel
  /** The primary store's epoch, as given at fork. */
  epoch: string
  /** Longest wait for the primary's answer before failing closed (default 2000 ms). */
  timeoutMs?: number
}

interface Pending {
  resolve(value: NonceResult | number): void
  reject(err: Error): void
  deadline: number
}

function busy(reason: string): AuthError {
  return new AuthError('server_busy', `replay protection unavailable (${reason}); try again shortly`, { retryAfter: 1 })
}

/**
 * A worker's view of the primary's replay memory.
 *
 * @example
 * const store = new IpcNonceStore({ channel: process, epoch: process.env.MCP_PKI_REPLAY_EPOCH! })
 * await store.checkSequence(sessionId, 7, Date.now() + 31_000, store.epoch()) // 'ok', then 'replay' on any worker
 */
export class IpcNonceStore implements NonceStore {
  private readonly channel: IpcChannel
  private readonly epochText: string
  private readonly timeoutMs: number
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private queue: Record<string, unknown>[] = []
  private flushScheduled = false
  private readonly timer: NodeJS.Timeout
  private readonly onMessage = (message: unknown): void => this.settle(message)

  constructor(options: IpcNonceStoreOptions) {
    const { channel, epoch, timeoutMs = 2000 } = options
    if (typeof channel?.send !== 'function') throw new TypeError('channel must be an IPC channel (process in a cluster worker)')
    if (typeof epoch !== 'string' || !/^[A-Za-z0-9_-]{11}$/.test(epoch)) throw new TypeError('epoch must be base64url of 8 bytes')
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError('timeoutMs must be a positive number')
    this.channel = channel
    this.epochText = epoch
    this.timeoutMs = timeoutMs
    channel.on('message', this.onMessage)
    channel.on('disconnect', () => this.failAll('the primary process is gone'))
    // One sweep for every pending call instead of a timer each.
    this.timer = setInterval(() => this.expire(), Math.max(10, Math.floor(timeoutMs / 4)))
    this.timer.unref()
  }

  epoch(): string {
    return this.epochText
  }

  checkAndInsert(nonce: string, expiresAt: number, epoch?: string): Promise<NonceResult> {
    if (typeof nonce !== 'string' || nonce.length === 0 || nonce.length > MAX_KEY) throw new TypeError('nonce must be a short non-empty string')
    if (!Number.isFinite(expiresAt)) throw new TypeError('expiresAt must be a finite number of ms since the epoch')
    return this.ask({ op: 'nonce', key: nonce, n: expiresAt, ...(epoch === undefined ? {} : { epoch }) }) as Promise<NonceResult>
  }

  checkSequence(sessionId: string, sequence: number, forgetAt: number, epoch: string): Promise<NonceResult> {
    if (typeof sessionId !== 'string' || sessionId.length === 0 || sessionId.length > MAX_KEY) throw new TypeError('sessionId must be a short non-empty string')
    if (!Number.isSafeInteger(sequence) || !Number.isFinite(forgetAt)) throw new TypeError('sequence must be an integer and forgetAt a finite number')
    return this.ask({ op: 'seq', key: sessionId, n: sequence, forgetAt, epoch }) as Promise<NonceResult>
  }

  /** Live entries in the primary's store. */
  size(): Promise<number> {
    return this.ask({ op: 'size' }) as Promise<number>
  }

  /** Stops listening; calls still waiting fail with server_busy. */
  close(): void {
    clearInterval(this.timer)
    this.channel.off('message', this.onMessage)
    this.failAll('the store is closed')
  }

  private ask(body: Record<string, unknown>): Promise<NonceResult | number> {
    if (!this.channel.connected) return Promise.reject(busy('the primary process is gone'))
    const id = this.nextId++
    if (this.nextId > Number.MAX_SAFE_INTEGER) this.nextId = 1
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, deadline: Date.now() + this.timeoutMs })
      this.queue.push({ id, ...body })
      if (!this.flushScheduled) {
        this.flushScheduled = true
        setImmediate(() => this.flush())
      }
    })
  }

  /** Sends every question of this turn as one message. */
  private flush(): void {
    this.flushScheduled = false
    const batch = this.queue
    this.queue = []
    const failBatch = (): void => {
      for (const q of batch) this.fail(q.id as number, busy('could not reach the primary process'))
    }
    try {
      this.channel.send({ [TAG]: 1, batch }, (err) => {
        if (err) failBatch()
      })
    } catch {
      failBatch()
    }
  }

  private settle(message: unknown): void {
    if (typeof message !== 'object' || message === null || (message as Record<string, unknown>)[TAG] !== 1) return
    const m = message as { answers?: unknown; epoch?: unknown }
    if (!Array.isArray(m.answers)) return
    for (const answer of m.answers as unknown[]) {
      if (!Array.isArray(answer) || typeof answer[0] !== 'number') continue
      const [id, result] = answer as [number, unknown]
      const call = this.pending.get(id)
      if (call === undefined) continue
      this.pending.delete(id)
      if (m.epoch !== this.epochText) {
        // A primary with another memory than the one this worker was forked for: trust nothing.
        call.reject(busy('the primary answered for another replay epoch'))
      } else if (RESULTS.has(result) || (typeof result === 'number' && Number.isSafeInteger(result))) {
        call.resolve(result as NonceResult | number)
      } else {
        call.reject(busy('malformed answer from the primary process'))
      }
    }
  }

  private fail(id: number, err: Error): void {
    const call = this.pending.get(id)
    if (call === undefined) return
    this.pending.delete(id)
    call.reject(err)
  }

  private failAll(reason: string): void {
    for (const id of [...this.pending.keys()]) this.fail(id, busy(reason))
  }

  private expire(): void {
    const now = Date.now()
    for (const [id, call] of this.pending) {
      if (call.deadline <= now) this.fail(id, busy(`no answer from the primary process within ${this.timeoutMs} ms`))
    }
  }
}

/** The primary's end: anything with `send` (a cluster Worker). */
export interface IpcPeer {
  send(message: unknown): boolean
  isConnected(): boolean
}

/**
 * Answers a worker's replay questions from `store` (the primary's one in-memory store). Call it
 * with every message the worker sends; returns false for messages that are not this module's.
 * A malformed question gets no answer (the worker then fails closed on its timeout).
 */
export function answerNonceQuestion(store: NonceStore, peer: IpcPeer, message: unknown): boolean {
  if (typeof message !== 'object' || message === null || (message as Record<string, unknown>)[TAG] !== 1) return false
  const batch = (message as { batch?: unknown }).batch
  if (!Array.isArray(batch)) return true
  const answers: [number, NonceResult | number][] = []
  const later: Promise<void>[] = []
  for (const q of batch as unknown[]) {
    const id = (q as { id?: unknown } | null)?.id
    if (typeof id !== 'number') continue
    const answer = answerOne(store, q as Question)
    if (answer === undefined) continue
    if (typeof answer === 'object') later.push(answer.then((r) => void answers.push([id, r]), () => undefined))
    else answers.push([id, answer])
  }
  const reply = (): void => {
    if (answers.length > 0 && peer.isConnected()) peer.send({ [TAG]: 1, epoch: store.epoch(), answers })
  }
  if (later.length === 0) reply()
  else void Promise.all(later).then(reply)
  return true
}

interface Question {
  op?: unknown
  key?: unknown
  n?: unknown
  forgetAt?: unknown
  epoch?: unknown
}

function answerOne(store: NonceStore, m: Question): NonceResult | number | Promise<NonceResult | number> | undefined {
  const keyOk = typeof m.key === 'string' && m.key.length > 0 && m.key.length <= MAX_KEY
  if (m.op === 'nonce' && keyOk && typeof m.n === 'number' && Number.isFinite(m.n) && (m.epoch === undefined || typeof m.epoch === 'string')) {
    return store.checkAndInsert(m.key as string, m.n, m.epoch as string | undefined)
  }
  if (m.op === 'seq' && keyOk && Number.isSafeInteger(m.n) && typeof m.forgetAt === 'number' && Number.isFinite(m.forgetAt) && typeof m.epoch === 'string') {
    return store.checkSequence(m.key as string, m.n as number, m.forgetAt, m.epoch)
  }
  if (m.op === 'size') return store.size()
  return undefined
}
