/**
 * Conditional revalidation (RFC 9111 §4.3): the validators a cache sends upstream for
 * a stored response, and how a 304 (or a HEAD response, §4.3.5) freshens it.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-4.3
 */
import { etagMatches } from '../../lib/http/headers.ts'
import { computeFreshness } from './freshness.ts'
import type { ObjectMeta, StoredHeaders } from './types.ts'

/**
 * Header fields a 304 or HEAD response never changes in the stored response: framing
 * and encoding describe the stored body, which the update does not replace (§3.2).
 */
const NOT_UPDATED: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding', 'content-range', 'content-encoding', 'trailer'])

/** Validators to send upstream for a stored response (§4.3.1); empty when it has none. */
export function conditionalHeaders (meta: ObjectMeta): Record<string, string> {
  const out: Record<string, string> = {}
  const etag = single(meta.headers.etag)
  const lastModified = single(meta.headers['last-modified'])
  if (etag !== undefined) out['if-none-match'] = etag
  if (lastModified !== undefined) out['if-modified-since'] = lastModified
  return out
}

/** Whether a stored response can be revalidated at all (it has a validator). */
export function hasValidator (meta: ObjectMeta): boolean {
  return meta.headers.etag !== undefined || meta.headers['last-modified'] !== undefined
}

/**
 * Whether a 304 or HEAD response describes the stored response (§4.3.4, §4.3.5): a
 * strong ETag must match a strong stored one strongly; otherwise a Last-Modified must be
 * equal; a response with neither matches only a stored response with neither.
 *
 * A stored weak ETag is compared weakly even to a strong one: the stored response only
 * ever claimed semantic equivalence, and our If-None-Match (always weak comparison, RFC
 * 9110 §13.1.2) matched it. nginx weakens the ETag of a body it gzips but sends the strong
 * one on the 304 (whose head no gzip filter sees): `W/"x"` stored, `"x"` on the 304.
 */
export function validatorsMatch (meta: ObjectMeta, headers: StoredHeaders): boolean {
  const etag = single(headers.etag)
  const storedEtag = single(meta.headers.etag)
  if (etag !== undefined) return etagMatches(etag, storedEtag, etag.startsWith('W/') || isWeak(storedEtag))
  const lastModified = single(headers['last-modified'])
  if (lastModified !== undefined) return lastModified === single(meta.headers['last-modified'])
  return storedEtag === undefined && meta.headers['last-modified'] === undefined
}

/**
 * The stored response freshened by a 304 or HEAD response: its header fields replace
 * the stored ones (except framing), and freshness is computed anew from the merged
 * fields and the new request/response times (§3.2, §4.3.4). The age is the new
 * response's (§4.2.3: its Age and Date): a stored Age it does not repeat is dropped, and
 * without a Date of its own the response time stands in, never the stored Date.
 */
export function freshenedMeta (meta: ObjectMeta, headers: StoredHeaders, requestTimeMs: number, responseTimeMs: number): ObjectMeta {
  const merged: Record<string, string | readonly string[]> = { ...meta.headers }
  for (const name in headers) {
    if (NOT_UPDATED.has(name)) continue
    merged[name] = headers[name]!
  }
  // A weak stored tag stays: the strong one names bytes we may not hold (see validatorsMatch).
  const storedEtag = single(meta.headers.etag)
  if (isWeak(storedEtag)) merged.etag = storedEtag!
  // Age describes the message it came with; the one first stored is not this response.
  if (headers.age === undefined) delete merged.age
  const timing: StoredHeaders = headers.date === undefined ? withoutDate(merged) : merged
  const freshness = computeFreshness({ status: meta.status, headers: timing, requestTimeMs, responseTimeMs })
  return {
    ...meta,
    headers: merged,
    requestTimeMs,
    responseTimeMs,
    initialAgeSeconds: freshness.initialAgeSeconds,
    freshnessLifetimeSeconds: freshness.freshnessLifetimeSeconds,
  }
}

function isWeak (etag: string | undefined): boolean {
  return etag?.startsWith('W/') === true
}

function withoutDate (headers: StoredHeaders): StoredHeaders {
  const { date: _date, ...rest } = headers
  return rest
}

function single (value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0]
}
