/**
 * One abort listener per caller signal instead of one per request.
 *
 * The SDK's `StreamableHTTPClientTransport` passes the same long-lived `AbortSignal` to every
 * fetch. Node's fetch (undici) adds an abort listener to that signal for every `Request` and takes
 * it off only when the `Request` is garbage-collected. So the live listeners pile up between
 * collections, each new `Request` copies them all (`getEventListeners`, to decide on
 * `setMaxListeners`), and past 1,500 every request prints a `MaxListenersExceededWarning` with a
 * stack trace. A benchmark client that sent 3,300 `tools/call`s through `createAuthFetch` printed
 * 2,000 such warnings, and profiles of both SDK clients showed the listener copy at ~2.5% of
 * client CPU.
 *
 * {@link requestSignal} gives each request its own `AbortController`. The caller's signal gets one
 * listener, which aborts the requests that are still live. The controller stays alive as long as
 * the response or its body is reachable (see {@link holdController}). After that, the registry
 * forgets it.
 * @module
 */

type Live = Set<WeakRef<AbortController>>

/** The live request controllers of each caller signal. */
const liveOf = new WeakMap<AbortSignal, Live>()
/** Forgets a request's controller once it is collected. */
const forget = new FinalizationRegistry<{ live: Live; ref: WeakRef<AbortController> }>(({ live, ref }) => void live.delete(ref))
const HOLD = Symbol('mcp-pki-auth request controller')

/**
 * A fresh `AbortController` for one request, aborted (with the same reason) when `parent` aborts.
 * Returns undefined when `parent` has already aborted: pass `parent` itself then.
 */
export function requestSignal(parent: AbortSignal): AbortController | undefined {
  if (parent.aborted) return undefined
  let live = liveOf.get(parent)
  if (live === undefined) {
    const set: Live = new Set()
    live = set
    liveOf.set(parent, set)
    parent.addEventListener(
      'abort',
      () => {
        for (const ref of set) ref.deref()?.abort(parent.reason)
        set.clear()
      },
      { once: true },
    )
  }
  const controller = new AbortController()
  const ref = new WeakRef(controller)
  live.add(ref)
  forget.register(controller, { live, ref })
  return controller
}

/** Keeps `controller` alive while `response` or its body stream is (the SDK holds only the body of an SSE stream). */
export function holdController(response: Response, controller: AbortController): void {
  Object.defineProperty(response, HOLD, { value: controller })
  if (response.body !== null) Object.defineProperty(response.body, HOLD, { value: controller })
}
