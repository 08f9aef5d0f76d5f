/**
 * Header plumbing shared by the fill and delivery paths: hop-by-hop filtering
 * (RFC 9110 §7.6.1), the stored header shape, and entity-tag comparison (§8.8.3.2).
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
 */

/** Header fields as Node and undici hand them over; names may be in any case. */
export type RawHeaders = Readonly<Record<string, string | readonly string[] | undefined>>

/**
 * Normalised response headers: lower-case names, one value per name except Set-Cookie.
 * Structurally the same type as edge/cache's StoredHeaders (lib/ may not import edge/).
 */
export type NormalizedHeaders = Readonly<Record<string, string | readonly string[]>>

/**
 * Fields that describe one connection and never travel past it (RFC 9110 §7.6.1, plus
 * the de-facto keep-alive / proxy-connection and the proxy auth pair of §11.7).
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization'
])

/** Options for {@link forwardRequestHeaders}. */
export interface ForwardHeadersOptions {
  /** Drop Range and If-Range: a cache fill fetches the whole object. */
  readonly stripRange?: boolean
  /**
   * Drop If-None-Match, If-Modified-Since, If-Match and If-Unmodified-Since: a fill
   * must get the object itself, and the cache answers the client's preconditions.
   */
  readonly stripConditionals?: boolean
  /** Further lower-case field names to drop (for example `host` when the upstream sets its own). */
  readonly drop?: ReadonlySet<string>
}

const RANGE_FIELDS: ReadonlySet<string> = new Set(['range', 'if-range'])
const CONDITIONAL_FIELDS: ReadonlySet<string> = new Set([
  'if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'
])

/**
 * Turns upstream response headers into the stored shape: lower-case names, no
 * hop-by-hop or Connection-listed fields, no Content-Length (the body length is
 * stored separately), repeats joined with ", " except Set-Cookie, which stays a list.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-5.3
 */
export function toStoredHeaders (raw: RawHeaders): NormalizedHeaders {
  const listed = connectionListed(raw)
  const out: Record<string, string | readonly string[]> = {}
  for (const name in raw) {
    const value = raw[name]
    if (value === undefined) continue
    const lower = name.toLowerCase()
    if (lower === 'content-length' || HOP_BY_HOP.has(lower) || listed?.has(lower) === true) continue
    const prev = out[lower]
    if (lower === 'set-cookie') {
      const cookies = typeof value === 'string' ? [value] : value
      out[lower] = prev === undefined ? [...cookies] : [...prev, ...cookies]
      continue
    }
    const joined = typeof value === 'string' ? value : value.join(', ')
    out[lower] = prev === undefined ? joined : `${String(prev)}, ${joined}`
  }
  return out
}

/**
 * Builds the headers for an upstream request from the client's: drops hop-by-hop and
 * Connection-listed fields (RFC 9110 §7.6.1), and Range / precondition fields when
 * asked; keeps everything else as sent.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-7.6.1
 */
export function forwardRequestHeaders (reqHeaders: RawHeaders, opts: ForwardHeadersOptions = {}): Record<string, string | string[]> {
  const listed = connectionListed(reqHeaders)
  const out: Record<string, string | string[]> = {}
  for (const name in reqHeaders) {
    const value = reqHeaders[name]
    if (value === undefined) continue
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || listed?.has(lower) === true || opts.drop?.has(lower) === true) continue
    if (opts.stripRange === true && RANGE_FIELDS.has(lower)) continue
    if (opts.stripConditionals === true && CONDITIONAL_FIELDS.has(lower)) continue
    out[lower] = typeof value === 'string' ? value : [...value]
  }
  return out
}

/**
 * Entity-tag comparison (RFC 9110 §8.8.3.2): strong when `weak` is false (neither tag
 * may be weak and the opaque tags must be identical), weak otherwise (opaque tags
 * identical, W/ ignored). A missing tag never matches.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3.2
 */
export function etagMatches (a: string | undefined, b: string | undefined, weak: boolean): boolean {
  if (a === undefined || b === undefined) return false
  const ai = a.startsWith('W/') ? 2 : 0
  const bi = b.startsWith('W/') ? 2 : 0
  if (!weak && (ai !== 0 || bi !== 0)) return false
  return a.length - ai === b.length - bi && a.startsWith(bi === 0 ? b : b.slice(bi), ai)
}

/**
 * If-None-Match evaluation against the representation we hold (RFC 9110 §13.1.2):
 * `*` matches any current representation; otherwise any listed tag matching `etag`
 * under weak comparison.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-13.1.2
 */
export function ifNoneMatchMatches (header: string | readonly string[] | undefined, etag: string | undefined): boolean {
  return entityTagListMatches(header, etag, true)
}

/**
 * If-Match evaluation (RFC 9110 §13.1.1): `*` matches any current representation;
 * otherwise a listed tag must match `etag` under strong comparison (a weak tag on either
 * side never does, §8.8.3.2). False when the field is absent.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-13.1.1
 */
export function ifMatchMatches (header: string | readonly string[] | undefined, etag: string | undefined): boolean {
  return entityTagListMatches(header, etag, false)
}

/**
 * Does a `*` or entity-tag list field match `etag` (weak or strong comparison)? Commas
 * inside quoted tags are handled; malformed members are skipped.
 */
function entityTagListMatches (header: string | readonly string[] | undefined, etag: string | undefined, weak: boolean): boolean {
  if (header === undefined) return false
  if (typeof header !== 'string') return header.some((h) => entityTagListMatches(h, etag, weak))
  if (header.trim() === '*') return true
  if (etag === undefined || (!weak && etag.startsWith('W/'))) return false
  const opaque = etag.startsWith('W/') ? etag.slice(2) : etag
  let i = 0
  while (i < header.length) {
    const c = header.charCodeAt(i)
    if (c === 0x20 || c === 0x09 || c === 0x2c) { i++; continue }
    const start = header.startsWith('W/', i) ? i + 2 : i
    if (header.charCodeAt(start) !== 0x22) {
      i = nextComma(header, i)
      continue
    }
    const close = header.indexOf('"', start + 1)
    if (close < 0) return false
    if ((weak || start === i) && close + 1 - start === opaque.length && header.startsWith(opaque, start)) return true
    i = close + 1
  }
  return false
}

function nextComma (s: string, i: number): number {
  const comma = s.indexOf(',', i)
  return comma < 0 ? s.length : comma + 1
}

// The field names a Connection header lists (RFC 9110 §7.6.1), or undefined when none.
function connectionListed (raw: RawHeaders): Set<string> | undefined {
  let out: Set<string> | undefined
  for (const name in raw) {
    if (name.length !== 10 || name.toLowerCase() !== 'connection') continue
    const value = raw[name]
    if (value === undefined) continue
    for (const line of typeof value === 'string' ? [value] : value) {
      for (const token of line.split(',')) {
        const t = token.trim().toLowerCase()
        if (t.length > 0) (out ??= new Set()).add(t)
      }
    }
  }
  return out
}
