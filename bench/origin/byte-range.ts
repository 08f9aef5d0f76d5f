/**
 * Outcome of reading a Range header against a representation of known length.
 * `ignore` means serve the whole representation with 200 (absent, malformed, or
 * multi-range, which a server may decline: RFC 9110 §14.2).
 */
export type ByteRange =
  | { readonly kind: 'ignore' }
  | { readonly kind: 'unsatisfiable' }
  | { readonly kind: 'range', readonly start: number, readonly end: number }

const IGNORE: ByteRange = { kind: 'ignore' }
const UNSATISFIABLE: ByteRange = { kind: 'unsatisfiable' }
const SINGLE_RANGE = /^bytes[ \t]*=[ \t]*(\d*)[ \t]*-[ \t]*(\d*)[ \t]*$/i

/**
 * Parses one `bytes=a-b`, `bytes=a-` or `bytes=-n` range; `end` is inclusive and clamped.
 * @see RFC 9110 §14.1.2 (byte ranges), §14.2 (Range), §15.5.17 (416)
 */
export function parseByteRange (header: string | undefined, length: number): ByteRange {
  if (header === undefined) return IGNORE
  const match = SINGLE_RANGE.exec(header)
  if (match === null) return IGNORE
  const first = match[1] ?? ''
  const last = match[2] ?? ''
  if (first === '' && last === '') return IGNORE
  if (first === '') return suffixRange(Number(last), length)
  const start = Number(first)
  const end = last === '' ? Number.MAX_SAFE_INTEGER : Number(last)
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end)) return IGNORE
  if (end < start) return IGNORE // an invalid range-spec makes the whole header ignorable
  if (start >= length) return UNSATISFIABLE
  return { kind: 'range', start, end: Math.min(end, length - 1) }
}

function suffixRange (suffixLength: number, length: number): ByteRange {
  if (!Number.isSafeInteger(suffixLength)) return IGNORE
  if (suffixLength === 0 || length === 0) return UNSATISFIABLE
  return { kind: 'range', start: Math.max(0, length - suffixLength), end: length - 1 }
}
