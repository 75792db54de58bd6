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
 * {@link requestSignal} gives requests a signal of their own: an `AbortController` shared by at most
 * {@link REQUESTS_PER_CONTROLLER} consecutive requests, then a fresh one. The caller's signal gets
 * one listener, which aborts the controllers that are still live. undici's listeners on a shared
 * signal are bounded by that count (so the copy above stays short and no warning is printed),
 * and the controller, its `WeakRef` and its finalizer registration are made once per that many
 * requests instead of once per request (a controller per request was ~4 µs of client CPU per
 * `tools/call` in situ, docs/benchmarks.md). A controller stays alive as long as a response of
 * its requests or its body is reachable (see {@link holdController}). After that, the registry
 * forgets it.
 * @module
 */

type Live = Set<WeakRef<AbortController>>

/** What is kept per caller signal: its live request controllers and the one handed out now. */
interface Follower {
  live: Live
  current: AbortController | undefined
  uses: number
}

/** Consecutive requests that share one controller (and so one signal given to fetch). */
export const REQUESTS_PER_CONTROLLER = 16

/** The request controllers of each caller signal. */
const followers = new WeakMap<AbortSignal, Follower>()
/** Forgets a request controller once it is collected. */
const forget = new FinalizationRegistry<{ live: Live; ref: WeakRef<AbortController> }>(({ live, ref }) => void live.delete(ref))
const HOLD = Symbol('mcp-pki-auth request controller')

/**
 * An `AbortController` for one request, aborted (with the same reason) when `parent` aborts; the
 * same one for up to {@link REQUESTS_PER_CONTROLLER} consecutive requests. Nothing but `parent`
 * aborts it. Returns undefined when `parent` has already aborted: pass `parent` itself then.
 */
export function requestSignal(parent: AbortSignal): AbortController | undefined {
  if (parent.aborted) return undefined
  let f = followers.get(parent)
  if (f === undefined) {
    const live: Live = new Set()
    f = { live, current: undefined, uses: 0 }
    followers.set(parent, f)
    parent.addEventListener(
      'abort',
      () => {
        for (const ref of live) ref.deref()?.abort(parent.reason)
        live.clear()
      },
      { once: true },
    )
  }
  if (f.current !== undefined && f.uses < REQUESTS_PER_CONTROLLER) {
    f.uses++
    return f.current
  }
  const controller = new AbortController()
  const ref = new WeakRef(controller)
  f.live.add(ref)
  forget.register(controller, { live: f.live, ref })
  f.current = controller
  f.uses = 1
  return controller
}

/** Keeps `controller` alive while `response` or its body stream is (the SDK holds only the body of an SSE stream). */
export function holdController(response: Response, controller: AbortController): void {
  Object.defineProperty(response, HOLD, { value: controller })
  if (response.body !== null) Object.defineProperty(response.body, HOLD, { value: controller })
}
