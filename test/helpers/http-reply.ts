import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'

export interface JsonReply<J = Record<string, unknown>> {
  status: number
  text: string
  /** The body parsed as JSON, `{}` when it is not JSON. */
  json: J
  headers: IncomingHttpHeaders
}

/** Reads a whole response: status, text, JSON (or `{}`) and headers. */
export function collectReply<J = Record<string, unknown>>(res: IncomingMessage, done: (reply: JsonReply<J>) => void): void {
  const chunks: Buffer[] = []
  res.on('data', (c: Buffer) => chunks.push(c))
  res.on('end', () => {
    const text = Buffer.concat(chunks).toString()
    let json = {} as J
    try {
      json = JSON.parse(text) as J
    } catch {
      // not JSON
    }
    done({ status: res.statusCode ?? 0, text, json, headers: res.headers })
  })
}
