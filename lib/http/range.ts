/**
 * Byte ranges (RFC 9110 §14): parsing Range, resolving it against a representation
 * length, Content-Range formatting and If-Range evaluation.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-14
 */
import { parseHttpDate } from './dates.ts'
import { etagMatches } from './headers.ts'

/** `first-last` / `first-` (RFC 9110 §14.1.1 int-range). */
export interface IntRangeSpec {
  readonly first: number
  readonly last?: number
}

/** `-suffix` (RFC 9110 §14.1.1 suffix-range): the last `suffix` bytes. */
export interface SuffixRangeSpec {
  readonly suffix: number
}

export type RangeSpec = IntRangeSpec | SuffixRangeSpec

/** A satisfiable range; `end` is inclusive, as in Content-Range. */
export interface ByteRange {
  readonly start: number
  readonly end: number
}

/** What to answer: 206 with these ranges, 416, or a plain 200 (Range ignored). */
export type RangeResolution =
  | { readonly kind: 'ranges', readonly ranges: readonly ByteRange[] }
  | { readonly kind: 'unsatisfiable' }
  | { readonly kind: 'ignore' }

export interface ResolveRangesOptions {
  /** More range-specs than this and Range is ignored (200). Default {@link DEFAULT_MAX_RANGES}. */
  readonly maxRanges?: number
}

/** Longer Range values are not parsed at all (nobody legitimate needs 1 KiB of ranges). */
export const MAX_RANGE_HEADER_BYTES = 1024
export const DEFAULT_MAX_RANGES = 16
/**
 * Ranges this close together are coalesced (RFC 9110 §15.3.7.2 allows it when the gap
 * is smaller than the cost of another multipart part: boundary plus part headers).
 */
export const COALESCE_GAP_BYTES = 80

const UNSATISFIABLE: RangeResolution = Object.freeze({ kind: 'unsatisfiable' })
const IGNORE: RangeResolution = Object.freeze({ kind: 'ignore' })

/**
 * Parses a Range field value. Only the `bytes` unit (case-insensitive, §14.1); OWS only
 * around list commas, empty list elements skipped (§5.6.1). Returns null when absent
 * or invalid, so the caller ignores Range and answers 200: another unit, junk,
 * first > last, numbers beyond Number.MAX_SAFE_INTEGER, or more than 1 KiB.
 * @example parseRangeHeader('bytes=0-99, -500') // [{ first: 0, last: 99 }, { suffix: 500 }]
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-14.1.1
 */
export function parseRangeHeader (value: string | undefined): RangeSpec[] | null {
  if (value === undefined || value.length > MAX_RANGE_HEADER_BYTES) return null
  let i = skipOws(value, 0)
  if (value.slice(i, i + 6).toLowerCase() !== 'bytes=') return null
  i += 6
  const specs: RangeSpec[] = []
  const cursor = { i }
  for (;;) {
    cursor.i = skipOws(value, cursor.i)
    if (cursor.i >= value.length) break
    if (value.charCodeAt(cursor.i) === 0x2c) { cursor.i++; continue }
    const spec = parseSpec(value, cursor)
    if (spec === null) return null
    specs.push(spec)
    cursor.i = skipOws(value, cursor.i)
    if (cursor.i < value.length && value.charCodeAt(cursor.i) !== 0x2c) return null
  }
  return specs.length === 0 ? null : specs
}

/**
 * Resolves parsed specs against a representation of `size` bytes (§14.1.2): `last` is
 * clamped to size-1, a suffix longer than the body means all of it, specs starting at
 * or beyond `size` (and `-0`) are dropped; none left → unsatisfiable (416). A suffix on
 * an empty body is satisfiable but has no bytes to send, so it is answered with 200.
 *
 * For several ranges (§14.2, §17.15 abuse rules), in this order:
 * 1. more than `maxRanges` specs → ignore;
 * 2. more than two ranges taking part in overlaps → ignore;
 * 3. more than two ranges not in ascending order → ignore;
 * 4. overlapping ranges, and ranges at most {@link COALESCE_GAP_BYTES} apart, are
 *    coalesced (result sorted); otherwise the ranges keep the order they were asked in.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-14.2
 */
export function resolveRanges (specs: readonly RangeSpec[], size: number, opts: ResolveRangesOptions = {}): RangeResolution {
  const maxRanges = opts.maxRanges ?? DEFAULT_MAX_RANGES
  if (!Number.isInteger(maxRanges) || maxRanges < 1) {
    throw new TypeError(`Expected options.maxRanges to be a positive integer, got ${maxRanges}`)
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new TypeError(`Expected size to be a non-negative safe integer, got ${size}`)
  }
  if (specs.length > maxRanges) return IGNORE
  const ranges: ByteRange[] = []
  let emptySuffix = false
  for (const spec of specs) {
    if ('suffix' in spec) {
      if (spec.suffix === 0) continue
      if (size === 0) { emptySuffix = true; continue }
      ranges.push({ start: Math.max(0, size - spec.suffix), end: size - 1 })
    } else if (spec.first < size) {
      ranges.push({ start: spec.first, end: Math.min(spec.last ?? size - 1, size - 1) })
    }
  }
  if (ranges.length === 0) return emptySuffix ? IGNORE : UNSATISFIABLE
  if (ranges.length === 1) return { kind: 'ranges', ranges }
  return resolveSeveral(ranges)
}

/**
 * The Content-Range value of a 206 part: `bytes 0-99/1000` (`end` inclusive).
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-14.4
 */
export function formatContentRange (start: number, end: number, size: number): string {
  return `bytes ${start}-${end}/${size}`
}

/**
 * The Content-Range value of a 416: `bytes *\/1000`.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-14.4
 */
export function formatUnsatisfiedRange (size: number): string {
  return `bytes */${size}`
}

/**
 * If-Range evaluation (RFC 9110 §13.1.5): absent → true. An entity-tag must match
 * `etag` under strong comparison (a weak tag on either side never matches). Otherwise
 * the value must be an HTTP-date equal to Last-Modified (we accept exact equality
 * only, compared as instants so the three HTTP-date forms agree). Anything else → false,
 * i.e. send the whole representation.
 *
 * A date matches only a strong Last-Modified (§13.1.5, §8.8.2.2): given the stored
 * response's `date`, a cache may deduce that only when Last-Modified is at least
 * {@link STRONG_LAST_MODIFIED_SECONDS} before it (a resource changed within that window
 * may have changed again in the same second). Without `date`, equality alone decides.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-13.1.5
 */
export function ifRangeMatches (ifRange: string | undefined, etag: string | undefined, lastModified: string | undefined, date?: string): boolean {
  if (ifRange === undefined) return true
  const v = ifRange.trim()
  if (v.startsWith('W/')) return false
  if (v.charCodeAt(0) === 0x22) return etagMatches(v, etag, false)
  if (lastModified === undefined) return false
  const since = parseHttpDate(v)
  const modified = parseHttpDate(lastModified)
  if (since === undefined || since !== modified) return false
  if (date === undefined) return true
  const dateMs = parseHttpDate(date)
  return dateMs !== undefined && modified <= dateMs - STRONG_LAST_MODIFIED_SECONDS * 1000
}

/**
 * How long before the stored Date a Last-Modified must lie for an intermediate cache to
 * treat it as a strong validator (RFC 9110 §8.8.2.2).
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-8.8.2.2
 */
export const STRONG_LAST_MODIFIED_SECONDS = 60

function skipOws (s: string, i: number): number {
  let c = s.charCodeAt(i)
  while (c === 0x20 || c === 0x09) c = s.charCodeAt(++i)
  return i
}

// 1*DIGIT at cursor.i; -1 when there is no digit, -2 beyond MAX_SAFE_INTEGER.
function parseDigits (s: string, cursor: { i: number }): number {
  const start = cursor.i
  let n = 0
  for (;;) {
    const d = s.charCodeAt(cursor.i) - 0x30
    if (!(d >= 0 && d <= 9)) break
    n = n * 10 + d
    if (n > Number.MAX_SAFE_INTEGER) return -2
    cursor.i++
  }
  return cursor.i === start ? -1 : n
}

function parseSpec (s: string, cursor: { i: number }): RangeSpec | null {
  if (s.charCodeAt(cursor.i) === 0x2d) {
    cursor.i++
    const suffix = parseDigits(s, cursor)
    return suffix < 0 ? null : { suffix }
  }
  const first = parseDigits(s, cursor)
  if (first < 0 || s.charCodeAt(cursor.i) !== 0x2d) return null
  cursor.i++
  const c = s.charCodeAt(cursor.i)
  if (!(c >= 0x30 && c <= 0x39)) return { first }
  const last = parseDigits(s, cursor)
  return last < first ? null : { first, last }
}

function resolveSeveral (ranges: ByteRange[]): RangeResolution {
  let ascending = true
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]!.start < ranges[i - 1]!.start) { ascending = false; break }
  }
  if (!ascending && ranges.length > 2) return IGNORE
  const sorted = ascending ? ranges : [...ranges].sort((a, b) => a.start - b.start || a.end - b.end)
  let overlaps = 0
  let mergeable = false
  let maxEnd = sorted[0]!.end
  for (let i = 1; i < sorted.length; i++) {
    const r = sorted[i]!
    if (r.start <= maxEnd) overlaps++
    if (r.start - maxEnd - 1 <= COALESCE_GAP_BYTES) mergeable = true
    if (r.end > maxEnd) maxEnd = r.end
  }
  // One overlap involves two ranges; a second means more than two overlapping ranges.
  if (overlaps > 1) return IGNORE
  if (!mergeable) return { kind: 'ranges', ranges }
  return { kind: 'ranges', ranges: coalesce(sorted) }
}

function coalesce (sorted: readonly ByteRange[]): ByteRange[] {
  const out: ByteRange[] = []
  let cur = sorted[0]!
  for (let i = 1; i < sorted.length; i++) {
    const r = sorted[i]!
    if (r.start - cur.end - 1 <= COALESCE_GAP_BYTES) {
      if (r.end > cur.end) cur = { start: cur.start, end: r.end }
    } else {
      out.push(cur)
      cur = r
    }
  }
  out.push(cur)
  return out
}
