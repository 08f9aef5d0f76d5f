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
 * strong ETag must match strongly; otherwise a Last-Modified must be equal; a response
 * with neither matches only a stored response with neither.
 */
export function validatorsMatch (meta: ObjectMeta, headers: StoredHeaders): boolean {
  const etag = single(headers.etag)
  const storedEtag = single(meta.headers.etag)
  if (etag !== undefined) return etagMatches(etag, storedEtag, etag.startsWith('W/'))
  const lastModified = single(headers['last-modified'])
  if (lastModified !== undefined) return lastModified === single(meta.headers['last-modified'])
  return storedEtag === undefined && meta.headers['last-modified'] === undefined
}

/**
 * The stored response freshened by a 304 or HEAD response: its header fields replace
 * the stored ones (except framing), and freshness is computed anew from the merged
 * fields and the new request/response times (§3.2, §4.3.4).
 */
export function freshenedMeta (meta: ObjectMeta, headers: StoredHeaders, requestTimeMs: number, responseTimeMs: number): ObjectMeta {
  const merged: Record<string, string | readonly string[]> = { ...meta.headers }
  for (const name in headers) {
    if (NOT_UPDATED.has(name)) continue
    merged[name] = headers[name]!
  }
  const freshness = computeFreshness({ status: meta.status, headers: merged, requestTimeMs, responseTimeMs })
  return {
    ...meta,
    headers: merged,
    requestTimeMs,
    responseTimeMs,
    initialAgeSeconds: freshness.initialAgeSeconds,
    freshnessLifetimeSeconds: freshness.freshnessLifetimeSeconds,
  }
}

function single (value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0]
}
