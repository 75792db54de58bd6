/**
 * Text from elsewhere (a peer, Redis, a file) made safe to print or log.
 *
 * "Unsafe" here means anything a terminal or a log viewer may act on rather than show: C0
 * controls (U+0000–U+001F), DEL, C1 controls (U+0080–U+009F: U+009B is CSI, the 8-bit form of
 * ESC [), the line and paragraph separators U+2028/U+2029, the bidirectional controls (U+200E,
 * U+200F, U+202A–U+202E, U+2066–U+2069: "Trojan Source" reordering), and lone surrogates
 * (ill-formed UTF-16, which UTF-8 encoders turn into U+FFFD bytes, so two different strings
 * would look alike).
 * @module
 */

/** One unsafe character (see the module comment); `u` flag off so lone surrogates match. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE_CHAR = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
const UNSAFE_CHARS = new RegExp(UNSAFE_CHAR.source, 'g')
/** Any character of UNSAFE_IN_JSON, or any surrogate (paired ones too): a quick pre-check. */
const MAYBE_UNSAFE_IN_JSON = /[\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]/
/** The same set minus the C0 controls, which JSON.stringify already escapes. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g

/**
 * A peer's text made safe for a terminal or a log line: every unsafe character (controls, DEL,
 * C1, line separators, bidi controls, lone surrogates) becomes U+FFFD. Multi-line text becomes
 * one line.
 */
export function printable(text: string): string {
  return UNSAFE_CHAR.test(text) ? text.replace(UNSAFE_CHARS, '\ufffd') : text
}

/**
 * {@link printable} line by line: keeps the line breaks of a message the program wrote itself
 * (errors with a hint on a second line), makes everything else on each line safe.
 */
export function printableLines(text: string): string {
  return UNSAFE_CHAR.test(text) ? text.split('\n').map(printable).join('\n') : text
}

/** True when `text` holds a C0 control, DEL or a C1 control (newlines, escapes, NUL, CSI …). */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true
  }
  return false
}

/** True when `text` is well-formed UTF-16 (no lone surrogate). */
export function isWellFormedText(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0xd800 || c > 0xdfff) continue
    if (c > 0xdbff) return false
    const next = text.charCodeAt(i + 1)
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false
    i++
  }
  return true
}

/**
 * JSON text (JSON.stringify's output) with every unsafe character that JSON.stringify leaves raw
 * (DEL, C1, separators, bidi controls) written as a `\uXXXX` escape: the same JSON value, but
 * nothing in the line that a terminal acts on. Lone surrogates are escaped by JSON.stringify.
 */
export function terminalSafeJson(json: string): string {
  if (!MAYBE_UNSAFE_IN_JSON.test(json)) return json // the common case, a plain character class: fast
  return json.replace(UNSAFE_IN_JSON, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'))
}
