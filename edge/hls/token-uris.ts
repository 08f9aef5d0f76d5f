/**
 * Keeping the playback token on a playlist's URIs. A player that came with `/t/<token>/…`
 * resolves relative URIs under that prefix and keeps the token (RFC 3986 §5.2), but a
 * root-relative URI (`/vod/title/720p/index.m3u8`) or an absolute one naming this edge
 * (`http://<Host>/vod/…`) replaces the whole path and loses it: 403 on a token-required edge.
 * So a playlist served to a request with a token gets `/t/<token>` put in front of the path
 * of exactly those URIs, on URI lines and on the URI attribute of the tags a player follows.
 *
 * Relative URIs are already fine and stay as they are; a URI to any other host never gets
 * the token (it must not leak); a URI that already carries a token is left alone. Everything
 * else in the body stays byte for byte (line endings, comments, unknown tags, a BOM).
 *
 * Hot path: stored bodies are immutable and served again and again, so the places a token
 * would go are found once per body Buffer (WeakMap). A playlist with only relative URIs, the
 * common case, then costs one WeakMap lookup per response and is never rewritten, so the edge's
 * fast path still answers it.
 * @see RFC 8216 §4.3.2.4 (EXT-X-KEY), §4.3.2.5 (EXT-X-MAP), §4.3.4.1 (EXT-X-MEDIA), §4.3.4.3 (EXT-X-I-FRAME-STREAM-INF),
 *   §4.3.4.4 (EXT-X-SESSION-DATA), §4.3.4.5 (EXT-X-SESSION-KEY); draft-pantos-hls-rfc8216bis §4.4.4.9 (EXT-X-PART),
 *   §4.4.5.3 (EXT-X-PRELOAD-HINT), §4.4.5.4 (EXT-X-RENDITION-REPORT)
 */
import { TOKEN_PATH_SEGMENT, TOKEN_QUERY_PARAM } from '../../lib/protocol/token.ts'
import type { BodyRewrite } from '../proxy/cache-proxy.ts'
import { isPlaylistUrl } from './media-kind.ts'

/** The per-request rewrite of a node: given the request's token, URL (path and query) and Host. */
export type PlaylistRewriteFor = (token: string | undefined, url: string, host: string | undefined) => BodyRewrite | undefined

/** Tags whose URI attribute a player requests. */
const URI_TAGS: ReadonlySet<string> = new Set([
  'EXT-X-MEDIA', 'EXT-X-I-FRAME-STREAM-INF', 'EXT-X-KEY', 'EXT-X-SESSION-KEY', 'EXT-X-MAP', 'EXT-X-PART',
  'EXT-X-PRELOAD-HINT', 'EXT-X-RENDITION-REPORT', 'EXT-X-SESSION-DATA',
])

// A verified token's wire form (`payload.signature`, base64url): nothing that could end a quoted string or a line.
const TOKEN_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
const TOKEN_PREFIX = `/${TOKEN_PATH_SEGMENT}/`
const TOKEN_QUERY_RE = new RegExp(`[?&]${TOKEN_QUERY_PARAM}=`)
const SLASH = 0x2f
const BACKSLASH = 0x5c
const HASH = 0x23
const QUOTE = 0x22
const CR = 0x0d

/** A place in a body where `/t/<token>` goes. */
interface Site {
  /** Byte offset: the start of the URI's path. */
  readonly offset: number
  /** Host values the URI's authority equals (lower case); undefined for a root-relative URI (any Host). */
  readonly hosts: readonly string[] | undefined
  /** The absolute URI has an empty path (`http://edge?x`): `/t/<token>/` then. */
  readonly slash: boolean
}

/** What a body offers, found once. */
interface Scan {
  readonly sites: readonly Site[]
  /** The body (latin1) cut at the sites: one piece more than sites. */
  readonly pieces: readonly string[]
  readonly rootRelative: boolean
  /** Every Host some site matches. */
  readonly hosts: ReadonlySet<string>
}

const NO_SITES: Scan = { sites: [], pieces: [], rootRelative: false, hosts: new Set() }
const scans = new WeakMap<Buffer, Scan>()

/**
 * `body` with `/t/<token>` put in front of the path of every root-relative URI and of every
 * absolute (or network-path) http(s) URI whose authority equals `host`, or undefined when no
 * URI needs it. `token` must be a token as verified (base64url `payload.signature`).
 */
export function tokenUris (body: Buffer, token: string, host: string | undefined): Buffer | undefined {
  const scan = scanOf(body)
  if (scan === NO_SITES) return undefined
  const wanted = host === undefined ? undefined : host.toLowerCase()
  if (!scan.rootRelative && (wanted === undefined || !scan.hosts.has(wanted))) return undefined
  const insert = TOKEN_PREFIX + token
  // One string, one copy into a Buffer: cheaper than a native copy per site.
  let out = scan.pieces[0]!
  scan.sites.forEach((site, i) => {
    if (site.hosts === undefined || (wanted !== undefined && site.hosts.includes(wanted))) out += site.slash ? `${insert}/` : insert
    out += scan.pieces[i + 1]!
  })
  return Buffer.from(out, 'latin1')
}

/**
 * The token rewrite for one response: for an .m3u8 path (by path, query ignored) asked for
 * with a token, a rewrite by {@link tokenUris}; else undefined (nothing to do, nothing allocated).
 */
export function tokenUrisTransform (token: string | undefined, url: string, host: string | undefined): BodyRewrite | undefined {
  if (token === undefined || !isPlaylistUrl(url) || !TOKEN_RE.test(token)) return undefined
  return (body) => tokenUris(body, token, host)
}

/**
 * A node's playlist rewrites: the token one when tokens are required (`carryToken`), then the
 * content-steering one (edge/hls/steering-transform.ts) when there is a control plane.
 * Undefined when there is neither, so the pipeline has no per-request work at all.
 */
export function playlistRewrites (options: {
  readonly carryToken: boolean
  readonly steering?: ((token: string | undefined, url: string) => BodyRewrite | undefined) | undefined
}): PlaylistRewriteFor | undefined {
  const { carryToken, steering } = options
  if (!carryToken) return steering
  if (steering === undefined) return tokenUrisTransform
  return (token, url, host) => chainRewrites(tokenUrisTransform(token, url, host), steering(token, url))
}

/** `first` then `second` on its output (or on the body, when `first` leaves it as is). */
export function chainRewrites (first: BodyRewrite | undefined, second: BodyRewrite | undefined): BodyRewrite | undefined {
  if (first === undefined) return second
  if (second === undefined) return first
  return (body) => {
    const once = first(body)
    return second(once ?? body) ?? once
  }
}

function scanOf (body: Buffer): Scan {
  let scan = scans.get(body)
  if (scan === undefined) {
    scan = scanPlaylist(body)
    scans.set(body, scan)
  }
  return scan
}

/** Finds the sites of a body (RFC 8216 §4.1: lines end in LF or CRLF; a line is a URI, a tag, a comment or blank). */
function scanPlaylist (body: Buffer): Scan {
  // Cheap exit: every root-relative or absolute URI starts a line or a quoted string with '/', or holds '//'.
  if (body[0] !== SLASH && body.indexOf('\n/') < 0 && body.indexOf('"/') < 0 && body.indexOf('//') < 0) return NO_SITES
  // latin1: one char per byte, so string offsets are byte offsets and the output stays byte-identical.
  const text = body.toString('latin1')
  const sites: Site[] = []
  let start = 0
  while (start < text.length) {
    let end = text.indexOf('\n', start)
    if (end < 0) end = text.length
    const lineEnd = end > start && text.charCodeAt(end - 1) === CR ? end - 1 : end
    if (text.charCodeAt(start) === HASH) tagSites(text, start, lineEnd, sites)
    else if (lineEnd > start) addSite(text, start, lineEnd, sites)
    start = end + 1
  }
  if (sites.length === 0) return NO_SITES
  const hosts = new Set<string>()
  for (const site of sites) for (const h of site.hosts ?? []) hosts.add(h)
  const pieces = sites.map((site, i) => text.slice(i === 0 ? 0 : sites[i - 1]!.offset, site.offset))
  pieces.push(text.slice(sites[sites.length - 1]!.offset))
  return { sites, pieces, rootRelative: sites.some((s) => s.hosts === undefined), hosts }
}

/** The URI attribute of a tag a player follows (RFC 8216 §4.2 attribute lists; quoted strings hold no '"' or ','-escaping). */
function tagSites (text: string, start: number, lineEnd: number, sites: Site[]): void {
  const colon = text.indexOf(':', start)
  if (colon < 0 || colon >= lineEnd || !URI_TAGS.has(text.slice(start + 1, colon))) return
  let i = colon + 1
  while (i < lineEnd) {
    const eq = text.indexOf('=', i)
    if (eq < 0 || eq >= lineEnd) return
    const name = text.slice(i, eq).trim()
    let valueEnd = eq + 1
    if (text.charCodeAt(eq + 1) === QUOTE) {
      const close = text.indexOf('"', eq + 2)
      if (close < 0 || close >= lineEnd) return
      if (name === 'URI') addSite(text, eq + 2, close, sites)
      valueEnd = close + 1
    }
    const comma = text.indexOf(',', valueEnd)
    i = comma < 0 || comma >= lineEnd ? lineEnd : comma + 1
  }
}

/** Records where the token goes in the URI `text[from, to)`, if it goes anywhere. */
function addSite (text: string, from: number, to: number, sites: Site[]): void {
  const c0 = text.charCodeAt(from)
  const c1 = from + 1 < to ? text.charCodeAt(from + 1) : -1
  if (c0 === SLASH && c1 !== SLASH && c1 !== BACKSLASH) {
    // path-absolute (RFC 3986 §4.2); WHATWG URL parsers read `/\host` as a network path: not ours.
    if (!carriesToken(text, from, to)) sites.push({ offset: from, hosts: undefined, slash: false })
    return
  }
  let authorityStart: number
  let defaultPort: string | undefined
  if (c0 === SLASH) {
    // network-path reference: the scheme (so the default port) is the playlist's, unknown here
    authorityStart = from + 2
  } else if (startsWithIgnoreCase(text, from, to, 'http://')) {
    authorityStart = from + 7
    defaultPort = '80'
  } else if (startsWithIgnoreCase(text, from, to, 'https://')) {
    authorityStart = from + 8
    defaultPort = '443'
  } else {
    return
  }
  let pathStart = authorityStart
  while (pathStart < to) {
    const c = text.charCodeAt(pathStart)
    if (c === SLASH || c === 0x3f || c === HASH) break
    pathStart++
  }
  const hosts = hostsOf(text.slice(authorityStart, pathStart).toLowerCase(), defaultPort)
  if (hosts === undefined || carriesToken(text, pathStart, to)) return
  sites.push({ offset: pathStart, hosts, slash: pathStart === to || text.charCodeAt(pathStart) !== SLASH })
}

/**
 * The Host values an authority equals: itself, and with the default port of its scheme
 * written out or left off (RFC 3986 §6.2.3). Undefined when it could never be a Host
 * (empty, userinfo, anything outside host characters): such a URI never gets the token.
 */
function hostsOf (authority: string, defaultPort: string | undefined): string[] | undefined {
  if (!/^(?:[a-z0-9._~!$&'()*+;=%-]+|\[[0-9a-f:.]+\])(?::[0-9]*)?$/.test(authority)) return undefined
  let bare = authority.endsWith(':') ? authority.slice(0, -1) : authority
  if (defaultPort === undefined) return [bare]
  if (bare.endsWith(`:${defaultPort}`)) bare = bare.slice(0, -defaultPort.length - 1)
  return bare.includes(':') && !bare.endsWith(']') ? [bare] : [bare, `${bare}:${defaultPort}`]
}

/** Does the URI from `pathStart` to `to` already carry a token (a `/t/` path or a `se_token` parameter)? */
function carriesToken (text: string, pathStart: number, to: number): boolean {
  if (text.startsWith(TOKEN_PREFIX, pathStart)) return true
  const q = text.indexOf('?', pathStart)
  return q >= 0 && q < to && TOKEN_QUERY_RE.test(text.slice(q, to))
}

function startsWithIgnoreCase (text: string, from: number, to: number, prefix: string): boolean {
  return to - from >= prefix.length && text.slice(from, from + prefix.length).toLowerCase() === prefix
}
