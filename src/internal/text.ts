/**
 * Text from elsewhere (a peer, Redis, a file) made safe to print.
 * @module
 */

/** A peer's text made safe for a terminal or a log line: C0/C1 controls and DEL become U+FFFD. */
export function printable(text: string): string {
  let out = ''
  for (const ch of text) {
    const c = ch.codePointAt(0)!
    out += c < 0x20 || (c >= 0x7f && c <= 0x9f) ? '\ufffd' : ch
  }
  return out
}

/** True when `text` holds a C0 control character or DEL (newlines, escapes, NUL …). */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x20 || c === 0x7f) return true
  }
  return false
}
