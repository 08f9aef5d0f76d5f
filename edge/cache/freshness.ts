/**
 * Freshness and storability (RFC 9111 §3, §4.2) as pure functions of headers and
 * times. No clock is read here: every time is a parameter, in epoch ms.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-4.2
 */
import { DELTA_SECONDS_MAX, parseCacheControl, parseCdnCacheControl } from '../../lib/http/cache-control.ts'
import type { CacheControl } from '../../lib/http/cache-control.ts'
import { parseHttpDate } from '../../lib/http/dates.ts'
import type { ObjectMeta, StoredHeaders } from './types.ts'

export const DEFAULT_HEURISTIC_FRACTION = 0.1
export const DEFAULT_MAX_HEURISTIC_SECONDS = 86_400

/**
 * Status codes a cache may give heuristic freshness (RFC 9110 §15.1).
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-15.1
 */
export const HEURISTICALLY_CACHEABLE: ReadonlySet<number> = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501])

// Final statuses whose caching rules we implement, for must-understand (RFC 9111 §5.2.2.3).
const UNDERSTOOD = new Set([...HEURISTICALLY_CACHEABLE, 302, 303, 307])

export interface FreshnessInput {
  readonly status: number
  readonly headers: StoredHeaders
  readonly requestTimeMs: number
  readonly responseTimeMs: number
  /** Share of (Date - Last-Modified) used as heuristic lifetime. Default 0.1 (§4.2.2). */
  readonly heuristicFraction?: number
  /** Cap on heuristic lifetime. Default 86400 (one day). */
  readonly maxHeuristicSeconds?: number
}

export interface Freshness {
  /** RFC 9111 §4.2.1 freshness_lifetime, whole seconds. */
  readonly freshnessLifetimeSeconds: number
  /** RFC 9111 §4.2.3 corrected_initial_age, seconds. */
  readonly initialAgeSeconds: number
}

/** Why a response is not stored; stable strings for logs, metrics and Cache-Status detail. */
export type NoStoreReason =
  | 'method' | 'status' | 'no-store' | 'request-no-store' | 'private' | 'authorization' | 'set-cookie'
  | 'vary-star' | 'partial' | 'no-freshness' | 'must-understand'

export interface StorabilityInput {
  readonly method: string
  readonly status: number
  readonly reqHeaders: Readonly<Record<string, string | readonly string[] | undefined>>
  readonly resHeaders: StoredHeaders
  /** We are a shared cache; kept explicit so a private mode cannot creep in unnoticed. */
  readonly shared: true
  /** Store responses that carry Set-Cookie (the cookie is then served to everyone). Default false. */
  readonly allowSetCookie?: boolean
}

export type Storability = { readonly storable: true } | { readonly storable: false, readonly reason: NoStoreReason }

const STORABLE: Storability = Object.freeze({ storable: true })

/**
 * The directives that govern this cache for a response: CDN-Cache-Control when it is
 * present and valid (RFC 9213 §2.2, `targeted`: Cache-Control and Expires are then
 * ignored), else Cache-Control.
 * @see https://www.rfc-editor.org/rfc/rfc9213#section-2.2
 */
export function responseDirectives (headers: StoredHeaders): { readonly cc: CacheControl, readonly targeted: boolean } {
  const cdn = parseCdnCacheControl(headers['cdn-cache-control'])
  if (cdn !== undefined) return { cc: cdn, targeted: true }
  return { cc: parseCacheControl(headers['cache-control']), targeted: false }
}

/**
 * Freshness lifetime (§4.2.1) and initial age (§4.2.3) of a response as received.
 * Lifetime: s-maxage, then max-age (from CDN-Cache-Control if valid, else
 * Cache-Control), then Expires - Date (a missing Date is the response time; an invalid
 * or repeated Expires means already expired), then the heuristic (§4.2.2) for
 * heuristically cacheable statuses or `public`: a fraction of Date - Last-Modified,
 * capped; else 0.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-4.2.1
 */
export function computeFreshness (input: FreshnessInput): Freshness {
  const { headers, requestTimeMs, responseTimeMs, heuristicFraction, maxHeuristicSeconds } = input
  if (heuristicFraction !== undefined && !(heuristicFraction >= 0 && heuristicFraction <= 1)) {
    throw new TypeError(`Expected heuristicFraction to be a number in [0, 1], got ${heuristicFraction}`)
  }
  if (maxHeuristicSeconds !== undefined && !(maxHeuristicSeconds >= 0)) {
    throw new TypeError(`Expected maxHeuristicSeconds to be a non-negative number, got ${maxHeuristicSeconds}`)
  }
  const dateMs = parseHttpDate(single(headers.date)) ?? responseTimeMs
  return {
    freshnessLifetimeSeconds: lifetime(input, dateMs),
    initialAgeSeconds: initialAge(headers, dateMs, requestTimeMs, responseTimeMs)
  }
}

/**
 * RFC 9111 §4.2.3 corrected_initial_age of a response as received (its Date and Age, the
 * request and response times), in seconds: what {@link computeFreshness} keeps for it.
 */
export function initialAgeSeconds (input: Pick<FreshnessInput, 'headers' | 'requestTimeMs' | 'responseTimeMs'>): number {
  const dateMs = parseHttpDate(single(input.headers.date)) ?? input.responseTimeMs
  return initialAge(input.headers, dateMs, input.requestTimeMs, input.responseTimeMs)
}

/** What the age of a response depends on once received. */
type AgeBasis = Pick<ObjectMeta, 'initialAgeSeconds' | 'responseTimeMs'>

/**
 * RFC 9111 §4.2.3 current_age = corrected_initial_age + resident_time, in seconds.
 * A clock that went backwards adds no resident time rather than subtracting.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-4.2.3
 */
export function currentAgeSeconds (meta: AgeBasis, nowMs: number): number {
  return meta.initialAgeSeconds + Math.max(0, nowMs - meta.responseTimeMs) / 1000
}

/** Remaining freshness in seconds (lifetime - current age); negative once stale. */
export function ttlSeconds (meta: ObjectMeta, nowMs: number): number {
  return meta.freshnessLifetimeSeconds - currentAgeSeconds(meta, nowMs)
}

/**
 * RFC 9111 §4.2: fresh while freshness_lifetime > current_age.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-4.2
 */
export function isFresh (meta: ObjectMeta, nowMs: number): boolean {
  return ttlSeconds(meta, nowMs) > 0
}

/**
 * The Age header for a response served from cache: whole seconds, capped at 2^31
 * as §5.1 requires on overflow.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-5.1
 */
export function ageHeaderValue (meta: AgeBasis, nowMs: number): string {
  return String(ageHeaderSeconds(meta, nowMs))
}

/** {@link ageHeaderValue} as a number (the fast path compares it to decide whether a pre-rendered head still holds). */
export function ageHeaderSeconds (meta: AgeBasis, nowMs: number): number {
  return Math.min(Math.floor(currentAgeSeconds(meta, nowMs)), DELTA_SECONDS_MAX)
}

/**
 * May a shared cache store this response (RFC 9111 §3)? Checks, in order: method
 * (GET/HEAD), request no-store, final status, must-understand, response no-store,
 * Vary: *, 206 or Content-Range (no partial content), private (qualified or not: we never store part of a
 * response), Authorization (§3.5), Set-Cookie, then: max-age, s-maxage, Expires or
 * public; or else a heuristically cacheable status with a validator (ETag or
 * Last-Modified), without which a stored copy could never be fresh nor revalidated.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-3
 */
export function storability (input: StorabilityInput): Storability {
  const { method, status, reqHeaders, resHeaders } = input
  if (method !== 'GET' && method !== 'HEAD') return notStorable('method')
  if (parseCacheControl(reqHeaders['cache-control']).noStore) return notStorable('request-no-store')
  if (status < 200 || status > 999 || status === 304) return notStorable('status')
  const { cc, targeted } = responseDirectives(resHeaders)
  // §5.2.2.3: must-understand overrides no-store when we know the status's rules.
  if (cc.mustUnderstand && !UNDERSTOOD.has(status)) return notStorable('must-understand')
  if (cc.noStore && !cc.mustUnderstand) return notStorable('no-store')
  if (hasVaryStar(resHeaders.vary)) return notStorable('vary-star')
  // Content-Range belongs to 206 and 416 (RFC 9110 §14.4); on a 200 it passes a part off as the whole.
  if (status === 206 || resHeaders['content-range'] !== undefined) return notStorable('partial')
  if (cc.private !== false) return notStorable('private')
  if (reqHeaders.authorization !== undefined && !cc.public && cc.sMaxage === undefined && !cc.mustRevalidate) {
    return notStorable('authorization')
  }
  if (resHeaders['set-cookie'] !== undefined && input.allowSetCookie !== true) return notStorable('set-cookie')
  if (explicitlyCacheable(cc, targeted, resHeaders)) return STORABLE
  if (!HEURISTICALLY_CACHEABLE.has(status)) return notStorable('status')
  if (resHeaders.etag === undefined && resHeaders['last-modified'] === undefined) return notStorable('no-freshness')
  return STORABLE
}

function notStorable (reason: NoStoreReason): Storability {
  return { storable: false, reason }
}

// One value of a field that must not repeat; undefined when absent or repeated.
function single (value: string | readonly string[] | undefined): string | undefined {
  if (value === undefined || typeof value === 'string') return value
  return value.length === 1 ? value[0] : undefined
}

function explicitlyCacheable (cc: CacheControl, targeted: boolean, headers: StoredHeaders): boolean {
  return cc.maxAge !== undefined || cc.sMaxage !== undefined || cc.public ||
    (!targeted && headers.expires !== undefined)
}

function hasVaryStar (vary: string | readonly string[] | undefined): boolean {
  if (vary === undefined) return false
  const lines = typeof vary === 'string' ? [vary] : vary
  return lines.some((line) => line.split(',').some((name) => name.trim() === '*'))
}

function lifetime (input: FreshnessInput, dateMs: number): number {
  const { status, headers } = input
  const { cc, targeted } = responseDirectives(headers)
  if (cc.sMaxage !== undefined) return cc.sMaxage
  if (cc.maxAge !== undefined) return cc.maxAge
  if (!targeted && headers.expires !== undefined) {
    // §5.3: an invalid Expires (and, by §4.2.1, a repeated one) means already expired.
    const expiresMs = parseHttpDate(single(headers.expires))
    return expiresMs === undefined ? 0 : Math.max(0, Math.floor((expiresMs - dateMs) / 1000))
  }
  if (!HEURISTICALLY_CACHEABLE.has(status) && !cc.public) return 0
  return heuristicLifetime(input, dateMs)
}

function heuristicLifetime (input: FreshnessInput, dateMs: number): number {
  const fraction = input.heuristicFraction ?? DEFAULT_HEURISTIC_FRACTION
  const cap = input.maxHeuristicSeconds ?? DEFAULT_MAX_HEURISTIC_SECONDS
  const lastModifiedMs = parseHttpDate(single(input.headers['last-modified']))
  if (lastModifiedMs === undefined || lastModifiedMs >= dateMs) return 0
  return Math.min(Math.floor(((dateMs - lastModifiedMs) / 1000) * fraction), cap)
}

// §4.2.3: corrected_initial_age = max(apparent_age, age_value + response_delay).
function initialAge (headers: StoredHeaders, dateMs: number, requestTimeMs: number, responseTimeMs: number): number {
  const apparentAgeMs = Math.max(0, responseTimeMs - dateMs)
  const responseDelayMs = Math.max(0, responseTimeMs - requestTimeMs)
  const correctedAgeMs = ageValue(headers.age) * 1000 + responseDelayMs
  return Math.max(apparentAgeMs, correctedAgeMs) / 1000
}

// §5.1: Age is one non-negative integer; anything else (a list, junk) is ignored.
function ageValue (age: string | readonly string[] | undefined): number {
  const v = single(age)?.trim()
  if (v === undefined || v.length === 0 || !/^\d+$/.test(v)) return 0
  return Math.min(Number(v), DELTA_SECONDS_MAX)
}
