/**
 * Vary (RFC 9111 §4.1): variants of one URL stored under secondary keys.
 *
 * A response with `Vary: a, b` is stored under `<primary>\u0000v:a=<value>\u0000b=<value>`
 * and a small *vary marker* under the primary key records the header names, so the
 * next request can compute its secondary key before looking it up. A new response
 * with a different Vary replaces the marker; variants under the old names become
 * unreachable and are deleted. All keys of a URL share the primary key as prefix, so
 * purging a URL purges all its variants.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-4.1
 */
import type { MemoryObject, ObjectMeta, StoredHeaders, StoredObject } from './types.ts'

type RawHeaders = Readonly<Record<string, string | readonly string[] | undefined>>

/** Separates the primary key from the variant part; never appears in a normalised URL. */
export const VARIANT_SEPARATOR = '\u0000'
const MARKER_STATUS = 0
const MARKER_HEADER = 'x-streamedge-vary'

/**
 * The header names a response varies on: lower-case, sorted, deduplicated; `['*']` for
 * `Vary: *`; empty when it does not vary.
 */
export function varyNames (vary: string | readonly string[] | undefined): readonly string[] {
  if (vary === undefined) return []
  const lines = typeof vary === 'string' ? [vary] : vary
  const names = new Set<string>()
  for (const line of lines) {
    for (const part of line.split(',')) {
      const name = part.trim().toLowerCase()
      if (name === '*') return ['*']
      if (name !== '') names.add(name)
    }
  }
  return [...names].sort()
}

/**
 * A request header's value normalised for variant matching (RFC 9111 §4.1: "normalized
 * by ... combining field lines, removing whitespace, or normalizing values in ways that
 * are known to have identical semantics"): field lines joined, whitespace around commas
 * removed, runs of whitespace collapsed. Case is kept except for Accept-Encoding, whose
 * codings are case-insensitive.
 */
export function normaliseVaryValue (name: string, value: string | readonly string[] | undefined): string {
  if (value === undefined) return ''
  const joined = typeof value === 'string' ? value : value.join(',')
  const tidy = joined.split(',').map((part) => part.trim().replace(/\s+/g, ' ')).filter((p) => p !== '').join(',')
  return name === 'accept-encoding' ? tidy.toLowerCase() : tidy
}

/**
 * The secondary key of a request for a URL that varies on `names`. An absent header is
 * kept apart from an empty one (`name` vs `name=`): RFC 9111 §4.1 lets an absent field
 * match only an absent one, and they can mean opposite things (no Accept-Encoding: any
 * coding; an empty one: identity only, RFC 9110 §12.5.3).
 */
export function variantKey (primaryKey: string, names: readonly string[], reqHeaders: RawHeaders): string {
  let key = primaryKey + VARIANT_SEPARATOR + 'v:'
  for (const name of names) {
    const value = reqHeaders[name]
    key += (value === undefined ? name : name + '=' + normaliseVaryValue(name, value)) + VARIANT_SEPARATOR
  }
  return key
}

/** The marker stored under a primary key whose responses vary. */
export function makeVaryMarker (primaryKey: string, names: readonly string[], timeMs: number): MemoryObject {
  const meta: ObjectMeta = {
    key: primaryKey,
    status: MARKER_STATUS,
    headers: { [MARKER_HEADER]: names.join(',') },
    bodyBytes: 0,
    requestTimeMs: timeMs,
    responseTimeMs: timeMs,
    initialAgeSeconds: 0,
    // A marker never serves a response; it lives until replaced, purged or evicted.
    freshnessLifetimeSeconds: Number.MAX_SAFE_INTEGER,
  }
  return { meta, body: Buffer.alloc(0) }
}

/** The names recorded in a vary marker, or undefined when the object is a real response. */
export function markerNames (object: StoredObject | undefined): readonly string[] | undefined {
  if (object === undefined || object.meta.status !== MARKER_STATUS) return undefined
  const value = (object.meta.headers as StoredHeaders)[MARKER_HEADER]
  return typeof value === 'string' && value !== '' ? value.split(',') : undefined
}

/** Whether two name lists are the same Vary. */
export function sameNames (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, i) => name === b[i])
}

/** The primary key of any key (strips the variant part). */
export function primaryOf (key: string): string {
  const i = key.indexOf(VARIANT_SEPARATOR)
  return i < 0 ? key : key.slice(0, i)
}
