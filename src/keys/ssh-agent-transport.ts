/**
 * Framed requests to an ssh-agent over its Unix socket (draft-miller-ssh-agent §3: a u32 length,
 * then the message): {@link agentRequest} opens a connection per request, so a stalled or
 * restarted agent never poisons a later call; {@link createAgentConnection} keeps one open for
 * a caller that signs all the time (a server: a new socket per signature costs about five times
 * the CPU of a request on an open one). Every reply is size-limited and every request timed.
 * @module
 */
import { createConnection, type Socket } from 'node:net'
import { closedError, protocolError, timeoutError, unreachableError } from './ssh-agent-error.js'
import { sshU32 } from './ssh-wire.js'

/** Largest agent reply read (an identity list of ~100 keys and certificates fits easily). */
export const MAX_AGENT_REPLY = 256 * 1024

/** Collects one reply frame from the bytes of a connection. */
class FrameReader {
  private chunks: Buffer[] = []
  private received = 0
  private expected = -1

  /** The reply once complete; undefined while more bytes are due. Throws SshAgentError for a bad frame. */
  push(chunk: Buffer): Buffer | undefined {
    this.chunks.push(chunk)
    this.received += chunk.length
    if (this.expected < 0 && this.received >= 4) {
      const head = Buffer.concat(this.chunks)
      this.chunks = [head]
      this.expected = head.readUInt32BE(0)
      if (this.expected === 0 || this.expected > MAX_AGENT_REPLY) throw protocolError(`reply of ${this.expected} bytes (limit ${MAX_AGENT_REPLY})`)
    }
    if (this.expected < 0 || this.received < 4 + this.expected) return undefined
    if (this.received > 4 + this.expected) throw protocolError('more data than one reply')
    const reply = Buffer.concat(this.chunks).subarray(4)
    this.chunks = []
    this.received = 0
    this.expected = -1
    return reply
  }

  get started(): boolean {
    return this.received > 0
  }
}

const framed = (body: Buffer): Buffer => Buffer.concat([sshU32(body.length), body])

/** Sends one framed request on a connection of its own and reads one framed reply. */
export function agentRequest(socketPath: string, body: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: socketPath })
    const reader = new FrameReader()
    let settled = false
    const finish = (err: Error | undefined, value?: Buffer): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if (err) reject(err)
      else resolve(value!)
    }
    const timer = setTimeout(() => finish(timeoutError(socketPath, timeoutMs)), timeoutMs)
    socket.on('connect', () => socket.write(framed(body)))
    socket.on('data', (chunk: Buffer) => {
      try {
        const reply = reader.push(chunk)
        if (reply !== undefined) finish(undefined, reply)
      } catch (err) {
        finish(err as Error)
      }
    })
    socket.on('end', () => finish(closedError(socketPath)))
    socket.on('error', (err: NodeJS.ErrnoException) => finish(unreachableError(socketPath, err)))
  })
}

/** A connection to the agent kept open between requests. */
export interface AgentConnection {
  /** One request, answered in turn (the protocol has no request ids). Rejects with SshAgentError. */
  request(body: Buffer): Promise<Buffer>
  /** Closes the connection; later requests open a new one. */
  close(): void
}

interface Waiting {
  body: Buffer
  resolve: (reply: Buffer) => void
  reject: (err: Error) => void
  /** Date.now() by which the reply must have come (from when the request was made). */
  deadline: number
  resent: boolean
}

/**
 * One connection for many requests, sent one at a time. A timeout, a close or a bad frame ends
 * the connection and fails the request on it; the next one opens a new connection. A request that
 * failed on a connection opened earlier, before any byte of its reply (the agent restarted while
 * it sat idle), is sent once more on a new one: asking for a signature again has no side effect.
 * The socket keeps the process alive only while a request waits.
 */
export function createAgentConnection(socketPath: string, timeoutMs: number): AgentConnection {
  const queue: Waiting[] = []
  let socket: Socket | undefined
  let reader = new FrameReader()
  let current: Waiting | undefined
  let currentOnNewSocket = false
  let timer: NodeJS.Timeout | undefined

  function open(): Socket {
    const s = createConnection({ path: socketPath })
    reader = new FrameReader()
    s.on('data', (chunk: Buffer) => {
      if (s !== socket) return
      let reply: Buffer | undefined
      try {
        reply = reader.push(chunk)
      } catch (err) {
        fail(err as Error)
        return
      }
      if (reply === undefined) return
      const done = current
      if (done === undefined) return fail(protocolError('a reply nobody asked for'))
      clearTimeout(timer)
      current = undefined
      s.unref()
      done.resolve(reply)
      next()
    })
    s.on('end', () => s === socket && fail(closedError(socketPath)))
    s.on('error', (err: NodeJS.ErrnoException) => s === socket && fail(unreachableError(socketPath, err)))
    return s
  }

  function fail(err: Error): void {
    clearTimeout(timer)
    socket?.destroy()
    socket = undefined
    const failed = current
    current = undefined
    if (failed !== undefined) {
      const idleSocketGone = !currentOnNewSocket && !reader.started && !failed.resent && err.name === 'SshAgentError' && (err as { code?: string }).code === 'agent_unreachable'
      if (idleSocketGone) {
        failed.resent = true
        queue.unshift(failed)
      } else {
        failed.reject(err)
      }
    }
    next()
  }

  function next(): void {
    if (current !== undefined) return
    let w: Waiting | undefined
    while ((w = queue.shift()) !== undefined && w.deadline <= Date.now()) w.reject(timeoutError(socketPath, timeoutMs))
    if (w === undefined) return
    current = w
    currentOnNewSocket = socket === undefined
    socket ??= open()
    socket.ref()
    socket.write(framed(w.body))
    timer = setTimeout(() => fail(timeoutError(socketPath, timeoutMs)), w.deadline - Date.now())
  }

  return {
    request(body) {
      return new Promise((resolve, reject) => {
        queue.push({ body, resolve, reject, deadline: Date.now() + timeoutMs, resent: false })
        next()
      })
    },
    close() {
      socket?.destroy()
      socket = undefined
    },
  }
}
