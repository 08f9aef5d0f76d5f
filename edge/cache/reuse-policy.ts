/**
 * May a stored response answer this request, and how (RFC 9111 §4)? Pure functions
 * over the stored metadata, the request's directives and the clock.
 *
 * Outcomes:
 * - `fresh`: serve it (a hit);
 * - `stale-acceptable`: stale, but the client said max-stale covers it: serve it;
 * - `stale-while-revalidate`: serve it now and refresh in the background (RFC 5861 §3);
 * - `revalidate`: ask upstream first (conditionally when validators exist); `reason` is
 *   `request` when the request's directives forbade reuse of a fresh entry (RFC 9211
 *   `fwd=request`), else `stale`: the entry expired, or its own no-cache forbids reuse
 *   without validation (RFC 9211 has no `fwd` for a response's own directives; `request`
 *   would blame the client, and §4.2.4 treats such a response like a stale one).
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-4
 */
import { parseCacheControl, type CacheControl } from '../../lib/http/cache-control.ts'
import { currentAgeSeconds } from './freshness.ts'
import { responseDirectives } from './freshness.ts'
import type { ObjectMeta } from './types.ts'

type RawHeaders = Readonly<Record<string, string | readonly string[] | undefined>>

/** The request directives that govern reuse, with Pragma: no-cache folded in (RFC 9111 §5.4). */
export interface RequestDirectives {
  readonly noCache: boolean
  readonly noStore: boolean
  readonly maxAge: number | undefined
  readonly maxStale: number | true | undefined
  readonly minFresh: number | undefined
  readonly onlyIfCached: boolean
}

const NONE: RequestDirectives = Object.freeze({
  noCache: false, noStore: false, maxAge: undefined, maxStale: undefined, minFresh: undefined, onlyIfCached: false,
})

/**
 * Parses the request's Cache-Control; `Pragma: no-cache` counts as `no-cache` only when
 * the request has no Cache-Control (RFC 9111 §5.4). Requests without either (almost all)
 * cost one property read.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-5.2.1
 */
export function requestDirectives (headers: RawHeaders): RequestDirectives {
  const cc = headers['cache-control']
  if (cc === undefined) {
    const pragma = headers.pragma
    if (pragma === undefined) return NONE
    const lines = typeof pragma === 'string' ? [pragma] : pragma
    const noCache = lines.some((l) => l.split(',').some((d) => d.trim().toLowerCase() === 'no-cache'))
    return noCache ? { ...NONE, noCache: true } : NONE
  }
  const parsed: CacheControl = parseCacheControl(cc)
  return {
    noCache: parsed.noCache !== false,
    noStore: parsed.noStore,
    maxAge: parsed.maxAge,
    maxStale: parsed.maxStale,
    minFresh: parsed.minFresh,
    onlyIfCached: parsed.onlyIfCached,
  }
}

export type ReuseDecision =
  | { readonly kind: 'fresh' }
  | { readonly kind: 'stale-acceptable' }
  | { readonly kind: 'stale-while-revalidate' }
  | { readonly kind: 'revalidate', readonly reason: 'stale' | 'request' }

const FRESH: ReuseDecision = Object.freeze({ kind: 'fresh' })
const STALE_ACCEPTABLE: ReuseDecision = Object.freeze({ kind: 'stale-acceptable' })
const SWR: ReuseDecision = Object.freeze({ kind: 'stale-while-revalidate' })
const REVALIDATE_STALE: ReuseDecision = Object.freeze({ kind: 'revalidate', reason: 'stale' })
const REVALIDATE_REQUEST: ReuseDecision = Object.freeze({ kind: 'revalidate', reason: 'request' })

/** What the stored response's own directives say about reusing it (parsed once per object). */
export interface StoredDirectives {
  /**
   * no-cache (bare): never reuse without validation (§5.2.2.4); also set when updated fields
   * made the stored response no-store or private (a shared cache may not reuse it, §3).
   */
  readonly noCache: boolean
  /** Field names of no-cache="a, b": they may not be sent without validation. */
  readonly noCacheFields: readonly string[]
  /** must-revalidate, proxy-revalidate, or s-maxage (§5.2.2.10: implies proxy-revalidate): never serve stale. */
  readonly neverStale: boolean
  readonly staleWhileRevalidateSeconds: number
  readonly staleIfErrorSeconds: number
  /** public, s-maxage or must-revalidate: may answer requests with Authorization (§3.5). */
  readonly sharedWithAuthorization: boolean
}

const parsedDirectives = new WeakMap<ObjectMeta, StoredDirectives>()

/** The stored response's reuse-relevant directives (memoised per meta object: hot hits parse nothing). */
export function storedDirectives (meta: ObjectMeta): StoredDirectives {
  let d = parsedDirectives.get(meta)
  if (d === undefined) {
    const { cc } = responseDirectives(meta.headers)
    // Admission refuses no-store and private (freshness.ts storability); a stored response says
    // so only once a 304 or HEAD updated its fields (§4.3.4), and is then never reused unvalidated.
    const unshareable = (cc.noStore && !cc.mustUnderstand) || cc.private !== false
    d = {
      noCache: cc.noCache === true || unshareable,
      noCacheFields: Array.isArray(cc.noCache) ? cc.noCache : [],
      neverStale: cc.mustRevalidate || cc.proxyRevalidate || cc.sMaxage !== undefined || unshareable,
      staleWhileRevalidateSeconds: cc.staleWhileRevalidate ?? 0,
      staleIfErrorSeconds: cc.staleIfError ?? 0,
      sharedWithAuthorization: cc.public || cc.sMaxage !== undefined || cc.mustRevalidate,
    }
    parsedDirectives.set(meta, d)
  }
  return d
}

/**
 * Decides how a stored response may be used for a request (RFC 9111 §4.2, §5.2.1,
 * RFC 5861 §3). Request no-cache and a response no-cache always revalidate.
 */
export function decideReuse (meta: ObjectMeta, req: RequestDirectives, nowMs: number): ReuseDecision {
  const stored = storedDirectives(meta)
  const age = currentAgeSeconds(meta, nowMs)
  const lifetime = meta.freshnessLifetimeSeconds
  const fresh = lifetime > age
  if (stored.noCache) return REVALIDATE_STALE
  if (req === NONE) return fresh ? FRESH : staleUse(stored, age - lifetime, undefined)
  if (req.noCache || (req.maxAge !== undefined && age > req.maxAge)) return fresh ? REVALIDATE_REQUEST : REVALIDATE_STALE
  if (fresh) {
    // §5.2.1.3: min-fresh asks for at least that much freshness left.
    if (req.minFresh !== undefined && lifetime - age < req.minFresh) return REVALIDATE_REQUEST
    return FRESH
  }
  return staleUse(stored, age - lifetime, req.maxStale)
}

function staleUse (stored: StoredDirectives, staleSeconds: number, maxStale: number | true | undefined): ReuseDecision {
  if (stored.neverStale) return REVALIDATE_STALE
  // §5.2.1.2: the client accepts a response stale by up to max-stale seconds (any, when bare).
  if (maxStale === true || (maxStale !== undefined && staleSeconds <= maxStale)) return STALE_ACCEPTABLE
  const swr = stored.staleWhileRevalidateSeconds
  if (swr > 0 && staleSeconds <= swr) return SWR
  return REVALIDATE_STALE
}

/**
 * May a stale response answer a request because upstream failed (RFC 5861 §4
 * stale-if-error, or the operator's grace)? Never when the response forbids stale use.
 */
export function canServeStaleOnError (meta: ObjectMeta, nowMs: number, graceSeconds: number): boolean {
  const stored = storedDirectives(meta)
  if (stored.neverStale || stored.noCache) return false
  const staleSeconds = currentAgeSeconds(meta, nowMs) - meta.freshnessLifetimeSeconds
  const allowance = Math.max(stored.staleIfErrorSeconds, graceSeconds)
  return allowance > 0 && staleSeconds <= allowance
}
