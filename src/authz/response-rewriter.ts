/**
 * Rewrites an MCP server's answer to one POST as it streams through, whatever produced it (an SDK
 * transport, a web `Response`, an upstream piped by the gateway):
 * - `application/json`: buffered whole, list results filtered, denial errors appended (a batch answer);
 * - `text/event-stream`: each event is rewritten when it answers a list request, the denial errors
 *   go out first as events of their own, everything else passes as it comes;
 * - `202 Accepted` with no body (the forwarded part of a batch held only notifications) becomes a
 *   `200` JSON answer carrying the denial errors.
 * Other answers (errors of the transport: 400, 404 …) pass unchanged.
 * @module
 */
import { StringDecoder } from 'node:string_decoder'
import { filterResponse, filterResponseByShape, type Enforcement, type Inspection } from './jsonrpc-enforcement.js'

export interface ResponseRewriter {
  /** Called once with the upstream status and content type; returns what to send instead. */
  head(status: number, contentType: string | undefined): { status: number; contentType: string | undefined; rewritten: boolean }
  /** Bytes to send now for a chunk of the upstream body (may be empty). */
  push(chunk: Uint8Array): Uint8Array
  /** Bytes to send at the end. */
  end(): Uint8Array
}

const EMPTY = new Uint8Array(0)

function encode(text: string): Uint8Array {
  return Buffer.from(text, 'utf8')
}

function sseEvent(message: unknown): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`
}

/** The JSON answer that carries only the denial errors (the caller's batch had nothing else that answers). */
export function denialsBody(inspection: Inspection, batch: boolean): string {
  return JSON.stringify(batch ? inspection.denials : inspection.denials[0])
}

function rewriteEvent(block: string, inspection: Inspection, e: Enforcement, byShape: boolean): string {
  const lines = block.split('\n')
  const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(l.startsWith('data: ') ? 6 : 5))
  if (data.length === 0) return block
  let message: unknown
  try {
    message = JSON.parse(data.join('\n'))
  } catch {
    return block
  }
  const filtered = byShape ? filterResponseByShape(message, e) : filterResponse(message, inspection.lists, e)
  if (filtered === message) return block
  return [...lines.filter((l) => !l.startsWith('data:')), `data: ${JSON.stringify(filtered)}`].join('\n')
}

/**
 * `byShape`: the requests are unknown (a GET stream): filter every response that looks like a list
 * result instead of those answering known list request ids.
 */
export function createResponseRewriter(inspection: Inspection, e: Enforcement, batch: boolean, byShape = false): ResponseRewriter {
  let mode: 'pass' | 'json' | 'sse' | 'replace' = 'pass'
  const decoder = new StringDecoder('utf8')
  let text = ''
  let prefix = inspection.denials.map(sseEvent).join('')
  const chunks: Uint8Array[] = []

  function sseOut(final: boolean): Uint8Array {
    text = text.replace(/\r\n/g, '\n')
    let out = prefix
    prefix = ''
    let cut: number
    while ((cut = text.indexOf('\n\n')) !== -1) {
      out += rewriteEvent(text.slice(0, cut), inspection, e, byShape) + '\n\n'
      text = text.slice(cut + 2)
    }
    if (final && text !== '') {
      out += text
      text = ''
    }
    return out === '' ? EMPTY : encode(out)
  }

  return {
    head(status, contentType) {
      const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
      const ok = status >= 200 && status < 300
      if (ok && type === 'application/json') mode = 'json'
      else if (ok && type === 'text/event-stream') mode = 'sse'
      else if ((status === 202 || status === 204) && inspection.denials.length > 0) mode = 'replace'
      if (mode === 'replace') return { status: 200, contentType: 'application/json', rewritten: true }
      return { status, contentType, rewritten: mode !== 'pass' }
    },
    push(chunk) {
      if (mode === 'pass') return chunk
      if (mode === 'replace') return EMPTY
      if (mode === 'json') {
        chunks.push(chunk)
        return EMPTY
      }
      text += decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
      if (text.endsWith('\r')) return EMPTY // its \n may be in the next chunk
      return sseOut(false)
    },
    end() {
      if (mode === 'pass') return EMPTY
      if (mode === 'replace') return encode(denialsBody(inspection, batch))
      if (mode === 'sse') {
        text += decoder.end()
        return sseOut(true)
      }
      const raw = Buffer.concat(chunks).toString('utf8')
      let parsed: unknown
      try {
        parsed = JSON.parse(raw)
      } catch {
        return encode(raw)
      }
      let out = Array.isArray(parsed) ? parsed.map((m) => filterResponse(m, inspection.lists, e)) : filterResponse(parsed, inspection.lists, e)
      if (inspection.denials.length > 0) out = [...(Array.isArray(out) ? out : [out]), ...inspection.denials]
      return encode(JSON.stringify(out))
    },
  }
}
