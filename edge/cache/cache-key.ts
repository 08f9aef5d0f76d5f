/**
 * Cache keys from request targets. Two targets an origin would answer the same way
 * should share a key, and two it might answer differently must not; so we normalise
 * only what RFC 3986 §6.2.2 says is equivalent, plus the query order.
 * @see https://www.rfc-editor.org/rfc/rfc3986#section-6.2.2
 */
import { CdnError } from '../../lib/errors.ts'

export interface CacheKeyOptions {
  /** Query parameter names left out of the key (exact, case-sensitive; e.g. token parameters). */
  readonly stripQueryParams: ReadonlySet<string>
}

const PERCENT_RE = /%([0-9A-Fa-f]{2})/g

/**
 * Normalises an origin-form request target (`/path?query`) into a cache key:
 * - percent-encoded unreserved characters (ALPHA DIGIT - . _ ~) are decoded and every
 *   other escape gets upper-case hex (RFC 3986 §6.2.2.1-2); invalid escapes stay as sent;
 * - dot segments are resolved per RFC 3986 §5.2.4 (after decoding, so `%2E%2E` counts),
 *   because origins resolve them too and `/a/../b` is `/b`; path case is kept;
 * - query parameters are sorted by name (stable for repeats), parameters named in
 *   `stripQueryParams` and empty ones are dropped, and an empty `?` disappears.
 * A path needing none of this is returned as is. Throws CdnError CDN_ERR_REQUEST_INVALID
 * when the target does not start with `/` or contains NUL, CR or LF, or its path
 * contains them percent-encoded (%00 %0A %0D: truncation and header injection once an
 * origin decodes them; the query is left to the origin, whose decoding is its own).
 * @see https://www.rfc-editor.org/rfc/rfc3986#section-5.2.4
 */
export function makeCacheKey (pathWithQuery: string, opts: CacheKeyOptions): string {
  const s = pathWithQuery
  if (s.charCodeAt(0) !== 0x2f) {
    throw new CdnError('CDN_ERR_REQUEST_INVALID', 'Expected the request target to start with "/"')
  }
  let queryAt = -1
  let percent = false
  let dot = false
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 0x00 || c === 0x0a || c === 0x0d) {
      throw new CdnError('CDN_ERR_REQUEST_INVALID', 'Request target contains NUL, CR or LF')
    }
    if (c === 0x25) {
      percent = true
      if (queryAt < 0 && isEncodedControl(s, i)) {
        throw new CdnError('CDN_ERR_REQUEST_INVALID', 'Request path contains an encoded NUL, CR or LF')
      }
    } else if (c === 0x3f && queryAt < 0) queryAt = i
    else if (c === 0x2e && queryAt < 0 && s.charCodeAt(i - 1) === 0x2f) dot = true
  }
  if (!percent && !dot && queryAt < 0) return s
  let path = queryAt < 0 ? s : s.slice(0, queryAt)
  if (percent) path = normalizePercent(path)
  if (dot || (percent && path.includes('/.'))) path = removeDotSegments(path)
  if (queryAt < 0) return path
  const query = normalizeQuery(s.slice(queryAt + 1), percent, opts.stripQueryParams)
  return query.length === 0 ? path : path + '?' + query
}

// "%00", "%0A" or "%0D" (any hex case) at index i.
function isEncodedControl (s: string, i: number): boolean {
  if (s.charCodeAt(i + 1) !== 0x30) return false
  const c = s.charCodeAt(i + 2) | 0x20
  return c === 0x30 || c === 0x61 || c === 0x64
}

function normalizePercent (s: string): string {
  return s.replace(PERCENT_RE, (escape, hex: string) => {
    const c = parseInt(hex, 16)
    return isUnreserved(c) ? String.fromCharCode(c) : escape.toUpperCase()
  })
}

// RFC 3986 §2.3 unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"
function isUnreserved (c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e
}

/**
 * RFC 3986 §5.2.4 remove_dot_segments for an absolute path: `.` segments vanish, `..`
 * removes the segment before it (never above the root), and a trailing dot segment
 * leaves a trailing slash (`/a/b/..` → `/a/`).
 */
function removeDotSegments (path: string): string {
  const segments = path.split('/')
  const out: string[] = []
  const last = segments.length - 1
  for (let i = 1; i <= last; i++) {
    const seg = segments[i]!
    if (seg === '.' || seg === '..') {
      if (seg === '..') out.pop()
      if (i === last) out.push('')
      continue
    }
    out.push(seg)
  }
  return '/' + out.join('/')
}

function normalizeQuery (query: string, percent: boolean, strip: ReadonlySet<string>): string {
  if (query.length === 0) return ''
  const params: Array<{ name: string, param: string }> = []
  for (const raw of query.split('&')) {
    if (raw.length === 0) continue
    const param = percent ? normalizePercent(raw) : raw
    const eq = param.indexOf('=')
    const name = eq < 0 ? param : param.slice(0, eq)
    if (!strip.has(name)) params.push({ name, param })
  }
  // Array.prototype.sort is stable, so repeated names keep their relative order.
  params.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  let out = ''
  for (let i = 0; i < params.length; i++) out += (i === 0 ? '' : '&') + params[i]!.param
  return out
}
