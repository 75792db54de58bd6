/** Connection-exhaustion attackers for the availability tests (loopback only). */
import * as net from 'node:net'

export interface Attack {
  /** Connections the attacker holds open now. */
  open(): number
  stop(): void
}

/**
 * `perAddress` connections from each of `addresses`, reopened as soon as the server closes one:
 * even ones silent, odd ones slowloris (a request head one header line per 500 ms, never ending).
 */
export function holdConnections(port: number, addresses: string[], perAddress: number): Attack {
  let stopped = false
  let open = 0
  const sockets = new Set<net.Socket>()
  const connect = (localAddress: string, slow: boolean): void => {
    if (stopped) return
    const s = net.connect({ port, host: '127.0.0.1', localAddress })
    sockets.add(s)
    let drip: NodeJS.Timeout | undefined
    let counted = false
    s.on('error', () => undefined)
    s.once('connect', () => {
      open++
      counted = true
      if (slow) {
        s.write('GET /health HTTP/1.1\r\nhost: x\r\n')
        drip = setInterval(() => s.writable && s.write('x-slow: 1\r\n'), 500)
      }
    })
    s.once('close', () => {
      if (counted) open--
      clearInterval(drip)
      sockets.delete(s)
      setTimeout(() => connect(localAddress, slow), 20)
    })
  }
  for (const a of addresses) for (let i = 0; i < perAddress; i++) connect(a, i % 2 === 1)
  return {
    open: () => open,
    stop() {
      stopped = true
      for (const s of sockets) s.destroy()
    },
  }
}
