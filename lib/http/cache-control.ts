/**
 * Cache-Control (RFC 9111 §5.2) and CDN-Cache-Control (RFC 9213) parsing into one
 * typed shape. Parsers attackers and broken origins hit: junk never throws, and
 * whenever a directive is ambiguous we resolve it towards caching less.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-5.2
 */
import { parseSfDictionary } from './structured-fields.ts'

/** Parsed cache directives. Request-only and response-only directives share one shape. */
export interface CacheControl {
  readonly maxAge?: number
  readonly sMaxage?: number
  readonly noStore: boolean
  /** `true` for bare no-cache; the lower-cased field names for `no-cache="a, b"`. */
  readonly noCache: boolean | readonly string[]
  /** `true` for bare private; the lower-cased field names for `private="a, b"`. */
  readonly private: boolean | readonly string[]
  readonly public: boolean
  readonly mustRevalidate: boolean
  readonly proxyRevalidate: boolean
  readonly noTransform: boolean
  readonly immutable: boolean
  readonly mustUnderstand: boolean
  readonly staleWhileRevalidate?: number
  readonly staleIfError?: number
  /** `true` for bare max-stale (any staleness is acceptable). */
  readonly maxStale?: number | true
  readonly minFresh?: number
  readonly onlyIfCached: boolean
}

type Builder = { -readonly [K in keyof CacheControl]: CacheControl[K] }

/**
 * RFC 9111 §1.2.2: a delta-seconds too large to represent is taken as 2^31.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-1.2.2
 */
export const DELTA_SECONDS_MAX = 2_147_483_648

const EMPTY: CacheControl = Object.freeze(newBuilder())

// An argument that was present but malformed (junk after it, or an unterminated quote).
const INVALID = Symbol('invalid')
type Arg = string | undefined | typeof INVALID

/**
 * Parses Cache-Control field lines (repeated lines are one list, RFC 9110 §5.3).
 * Names are case-insensitive; arguments may be tokens or quoted strings (§5.2).
 * Rules for bad input, all towards caching less:
 * - a directive with junk after it keeps its name, and its argument counts as invalid;
 * - max-age / s-maxage with a missing or invalid argument is 0 (stale), and duplicates
 *   with different values are 0 as well (§4.2.1 allows "considered stale");
 * - duplicate stale-while-revalidate / stale-if-error / max-stale keep the smallest value,
 *   duplicate min-fresh the largest; an invalid argument drops these directives;
 * - `no-cache=""` / `private=""` (an empty field list) count as the bare directive.
 * @see https://www.rfc-editor.org/rfc/rfc9111#section-5.2
 */
export function parseCacheControl (value: string | readonly string[] | undefined): CacheControl {
  if (value === undefined || value.length === 0) return EMPTY
  const cc = newBuilder()
  if (typeof value === 'string') parseInto(cc, value)
  else for (const line of value) parseInto(cc, line)
  return cc
}

/**
 * Parses CDN-Cache-Control (RFC 9213 §2.1): an RFC 8941 Dictionary with the
 * Cache-Control directive names. Returns undefined when the field is absent, empty or
 * not a valid Dictionary; the caller then falls back to Cache-Control and Expires
 * (RFC 9213 §2.2). Otherwise the caller must ignore Cache-Control and Expires.
 * Values of the wrong type (`max-age=1.5`, `max-age="60"`) are not consumed (§2.1).
 * @see https://www.rfc-editor.org/rfc/rfc9213#section-2.1
 */
export function parseCdnCacheControl (value: string | readonly string[] | undefined): CacheControl | undefined {
  if (value === undefined) return undefined
  const dict = parseSfDictionary(value)
  if (dict === undefined || dict.size === 0) return undefined
  const cc = newBuilder()
  for (const [key, member] of dict) {
    if (member.kind !== 'item') continue
    const v = member.value
    switch (key) {
      case 'max-age':
      case 's-maxage':
      case 'stale-while-revalidate':
      case 'stale-if-error':
        if (v.type === 'integer' && v.value >= 0) setSeconds(cc, key, Math.min(v.value, DELTA_SECONDS_MAX))
        break
      case 'no-cache':
      case 'private':
        if (v.type === 'boolean') setList(cc, key, v.value ? undefined : false)
        else if (v.type === 'string') setList(cc, key, v.value)
        break
      default:
        if (v.type === 'boolean' && v.value) setFlag(cc, key)
    }
  }
  return cc
}

function newBuilder (): Builder {
  return {
    noStore: false,
    noCache: false,
    private: false,
    public: false,
    mustRevalidate: false,
    proxyRevalidate: false,
    noTransform: false,
    immutable: false,
    mustUnderstand: false,
    onlyIfCached: false
  }
}

function isTchar (c: number): boolean {
  // RFC 9110 §5.6.2 tchar: ALPHA / DIGIT / "!#$%&'*+-.^_`|~"
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x21 || (c >= 0x23 && c <= 0x27) || c === 0x2a || c === 0x2b || c === 0x2d ||
    c === 0x2e || c === 0x5e || c === 0x5f || c === 0x60 || c === 0x7c || c === 0x7e
}

function isOws (c: number): boolean {
  return c === 0x20 || c === 0x09
}

// Moves past the current list element to just after the next comma outside quotes.
function skipElement (s: string, i: number): number {
  let quoted = false
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (quoted && c === 0x5c) i++
    else if (c === 0x22) quoted = !quoted
    else if (c === 0x2c && !quoted) return i + 1
  }
  return i
}

function parseInto (cc: Builder, s: string): void {
  let i = 0
  while (i < s.length) {
    let c = s.charCodeAt(i)
    if (isOws(c) || c === 0x2c) { i++; continue }
    const nameStart = i
    while (i < s.length && isTchar(s.charCodeAt(i))) i++
    if (i === nameStart) { i = skipElement(s, i); continue }
    const name = s.slice(nameStart, i).toLowerCase()
    while (isOws(s.charCodeAt(i))) i++
    let arg: Arg
    if (s.charCodeAt(i) === 0x3d) {
      i++
      while (isOws(s.charCodeAt(i))) i++
      const start = i
      if (s.charCodeAt(i) === 0x22) {
        const end = quotedEnd(s, i)
        arg = end < 0 ? INVALID : unquote(s.slice(start + 1, end))
        i = end < 0 ? s.length : end + 1
      } else {
        while (i < s.length && isTchar(s.charCodeAt(i))) i++
        arg = s.slice(start, i)
      }
      while (isOws(s.charCodeAt(i))) i++
    }
    c = s.charCodeAt(i)
    if (i < s.length && c !== 0x2c) {
      arg = INVALID
      i = skipElement(s, i)
    }
    apply(cc, name, arg)
  }
}

// Index of the closing DQUOTE of the quoted-string opening at `i`, or -1 if unterminated.
function quotedEnd (s: string, i: number): number {
  for (i++; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x5c) i++
    else if (c === 0x22) return i
  }
  return -1
}

function unquote (s: string): string {
  return s.includes('\\') ? s.replace(/\\(.)/g, '$1') : s
}

// delta-seconds = 1*DIGIT (RFC 9111 §1.2.2); undefined when not all digits.
function deltaSeconds (arg: Arg): number | undefined {
  if (typeof arg !== 'string' || arg.length === 0) return undefined
  let n = 0
  for (let i = 0; i < arg.length; i++) {
    const d = arg.charCodeAt(i) - 0x30
    if (!(d >= 0 && d <= 9)) return undefined
    if (n < DELTA_SECONDS_MAX) n = n * 10 + d
  }
  return Math.min(n, DELTA_SECONDS_MAX)
}

function apply (cc: Builder, name: string, arg: Arg): void {
  switch (name) {
    case 'max-age':
    case 's-maxage':
      setSeconds(cc, name, deltaSeconds(arg) ?? 0)
      return
    case 'stale-while-revalidate':
    case 'stale-if-error':
    case 'min-fresh': {
      const n = deltaSeconds(arg)
      if (n !== undefined) setSeconds(cc, name, n)
      return
    }
    case 'max-stale': {
      if (arg === undefined) {
        cc.maxStale ??= true
        return
      }
      const n = deltaSeconds(arg)
      if (n !== undefined) cc.maxStale = typeof cc.maxStale === 'number' ? Math.min(cc.maxStale, n) : n
      return
    }
    case 'no-cache':
    case 'private':
      setList(cc, name, arg === INVALID ? undefined : arg)
      return
    default:
      setFlag(cc, name)
  }
}

type SecondsDirective = 'max-age' | 's-maxage' | 'stale-while-revalidate' | 'stale-if-error' | 'min-fresh'

function setSeconds (cc: Builder, name: SecondsDirective, n: number): void {
  switch (name) {
    case 'max-age':
      cc.maxAge = cc.maxAge === undefined || cc.maxAge === n ? n : 0
      return
    case 's-maxage':
      cc.sMaxage = cc.sMaxage === undefined || cc.sMaxage === n ? n : 0
      return
    case 'stale-while-revalidate':
      cc.staleWhileRevalidate = Math.min(cc.staleWhileRevalidate ?? n, n)
      return
    case 'stale-if-error':
      cc.staleIfError = Math.min(cc.staleIfError ?? n, n)
      return
    case 'min-fresh':
      cc.minFresh = Math.max(cc.minFresh ?? n, n)
  }
}

// no-cache / private: undefined = bare directive, false = explicitly off (SF `?0`),
// a string = a field-name list. Bare wins over lists; lists merge.
function setList (cc: Builder, name: 'no-cache' | 'private', arg: string | false | undefined): void {
  if (arg === false) return
  const key = name === 'no-cache' ? 'noCache' : 'private'
  const current = cc[key]
  if (current === true) return
  const names = arg === undefined ? [] : fieldNames(arg)
  if (names.length === 0) cc[key] = true
  else cc[key] = current === false ? names : [...current, ...names]
}

function fieldNames (list: string): string[] {
  const out: string[] = []
  for (const part of list.split(',')) {
    const name = part.trim().toLowerCase()
    if (name.length > 0) out.push(name)
  }
  return out
}

function setFlag (cc: Builder, name: string): void {
  switch (name) {
    case 'no-store': cc.noStore = true; return
    case 'public': cc.public = true; return
    case 'must-revalidate': cc.mustRevalidate = true; return
    case 'proxy-revalidate': cc.proxyRevalidate = true; return
    case 'no-transform': cc.noTransform = true; return
    case 'immutable': cc.immutable = true; return
    case 'must-understand': cc.mustUnderstand = true; return
    case 'only-if-cached': cc.onlyIfCached = true
  }
}
