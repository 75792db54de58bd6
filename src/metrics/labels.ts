/**
 * Bounded label values. A label value never comes straight from a peer: error codes are mapped
 * onto the fixed list of codes this package defines, HTTP statuses onto 100-599, tool names onto
 * the names the upstream itself listed (at most {@link MAX_TOOL_NAMES}), everything else `other`.
 * @module
 */
import { LOCAL_ERROR_CODES, PROTOCOL_ERROR_CODES } from '../errors.js'

/** The `code` label of a success. */
export const OK_CODE = 'ok'
/** Anything outside a fixed set. */
export const OTHER = 'other'

const KNOWN_CODES: ReadonlySet<string> = new Set<string>([...PROTOCOL_ERROR_CODES, ...LOCAL_ERROR_CODES])

/** An error code as a label: one of the package's codes, else `other`. */
export function codeLabel(code: string | undefined): string {
  if (code === undefined) return OK_CODE
  return KNOWN_CODES.has(code) ? code : OTHER
}

/** An HTTP status as a label: `100`..`599`, else `error` (no answer at all). */
export function statusLabel(status: number | undefined): string {
  return status !== undefined && Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : 'error'
}

/** Most distinct tool names kept as label values; later names count as `other`. */
export const MAX_TOOL_NAMES = 256
/** MCP tool names: 1-128 of A-Z a-z 0-9 _ - . (we keep at most 64). */
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,64}$/

/** The tool names an upstream listed (bounded), mapping any other name to `other`. */
export class ToolNames {
  readonly #known = new Set<string>()

  /** Remembers names from a `tools/list` result (well-formed ones, while there is room). */
  learn(names: Iterable<unknown>): void {
    for (const name of names) {
      if (this.#known.size >= MAX_TOOL_NAMES) return
      if (typeof name === 'string' && TOOL_NAME.test(name) && name !== OTHER) this.#known.add(name)
    }
  }

  label(name: unknown): string {
    return typeof name === 'string' && this.#known.has(name) ? name : OTHER
  }

  get size(): number {
    return this.#known.size
  }
}
