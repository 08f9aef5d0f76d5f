/**
 * Token enforcement at the top of the edge pipeline (pure and allocation-light: it runs on
 * every request when `edge.token.required` is set).
 *
 * A token travels in the path, `/t/<token>/vod/title/360p/seg-1.ts`, so a player resolving
 * relative playlist URIs (`360p/index.m3u8`, `seg-1.ts`) stays under `/t/<token>/vod/title/`
 * and keeps it (RFC 3986 §5.2). A `se_token` query parameter is accepted too (absolute URIs
 * written by someone else). The check returns the URL without the token: that is what the
 * cache key and the upstream see, so every viewer shares one cached copy.
 *
 * Shields check tokens too (`shield.token.required`): a player who skips the edges and asks a
 * shield directly needs a valid token there. Edges do not forward the player's token (it is
 * not part of the cache key, and edges also fetch on their own behalf: prefetch, prefill,
 * revalidation); a shield lets in tokenless requests from its trusted proxies, the edges.
 */
import { CdnError } from '../../lib/errors.ts'
import { normalizeIp } from '../../lib/net/ip-address.ts'
import {
  parseTokenKeys, TOKEN_PATH_SEGMENT, TOKEN_QUERY_PARAM, TokenVerifier, type TokenClaims, type TokenRejectReason
} from '../../lib/protocol/token.ts'

/** Playback-token checking (CacheNodeOptions.token). */
export interface TokenCheck {
  /** Refuse (403) every request without a valid token. */
  readonly required: boolean
  readonly verifier: TokenVerifier
  /**
   * Also let in a request that carries no token when it comes straight from one of the node's
   * trusted proxies: a shield's edges. A token such a request does carry is still verified;
   * anyone else needs a valid token.
   */
  readonly tokenlessFromTrustedProxies?: boolean
}

/**
 * Token checking from `<role>.token.*` (keys as kid:secret). Required tokens without keys
 * cannot work, and a shield requiring tokens without trusted proxies would refuse its own
 * edges: either refuses to start, naming the settings.
 */
export function tokenCheckFrom (role: 'edge' | 'shield', token: { readonly required: boolean, readonly keys: readonly string[] }, trustedProxies: readonly string[]): TokenCheck | undefined {
  if (token.keys.length === 0) {
    if (token.required) throw new CdnError('CDN_ERR_CONFIG_INVALID', `Invalid config: ${role}.token.required is true but ${role}.token.keys is empty: give the control plane's token keys (kid:secret)`)
    return undefined
  }
  if (role === 'shield' && token.required && trustedProxies.length === 0) {
    throw new CdnError('CDN_ERR_CONFIG_INVALID', 'Invalid config: shield.token.required is true but shield.trustedProxies is empty: list the edges (their own requests carry no player token)')
  }
  return {
    required: token.required,
    verifier: new TokenVerifier(parseTokenKeys(token.keys, `${role}.token.keys`), { leewaySeconds: 30 }),
    ...(role === 'shield' ? { tokenlessFromTrustedProxies: true } : {}),
  }
}

/** Where the token was found. */
export type TokenSource = 'path' | 'query'

/** A URL split into its token and the rest. */
export interface SplitUrl {
  /** The token, or undefined when the URL carries none. */
  readonly token: string | undefined
  readonly source: TokenSource | undefined
  /** The URL without the token: path and the remaining query (`/vod/t/seg.ts?x=1`). */
  readonly url: string
  /** Just the path of `url`, still percent-encoded. */
  readonly path: string
  /** A token slot was taken out of the URL (a `/t/…/` segment or `se_token` parameter), even an empty one. */
  readonly stripped: boolean
}

/** Outcome of {@link checkRequestToken}. */
export type TokenCheckResult =
  | {
    readonly ok: true
    /** The request URL without the token (path + remaining query): serve and cache this. */
    readonly path: string
    readonly claims: TokenClaims
    readonly token: string
    readonly source: TokenSource
  }
  | { readonly ok: false, readonly status: 403, readonly reason: TokenRejectReason | 'missing' }

const PATH_PREFIX = `/${TOKEN_PATH_SEGMENT}/`
const QUERY_KEY = `${TOKEN_QUERY_PARAM}=`

/**
 * Verifies the token of a request. `rawUrl` is `req.url` (origin-form, or absolute-form from
 * a proxy); `clientIp` is the peer address (IPv4-mapped IPv6 is fine). Answers 403 for a
 * missing, malformed, forged, expired or out-of-scope token, or a path that could escape the
 * token's scope once decoded (`..`, `%2e%2e`, `%2F`).
 */
export function checkRequestToken (rawUrl: string, clientIp: string | undefined, verifier: TokenVerifier, nowMs: number): TokenCheckResult {
  const split = splitRequestToken(rawUrl)
  if (split.token === undefined || split.source === undefined) return { ok: false, status: 403, reason: 'missing' }
  const ip = clientIp === undefined ? undefined : normalizeIp(clientIp)
  const result = verifier.verify(split.token, { nowMs, path: split.path, clientIp: ip })
  if (!result.ok) return { ok: false, status: 403, reason: result.reason }
  return { ok: true, path: split.url, claims: result.claims, token: split.token, source: split.source }
}

/**
 * Separates the token from a request URL without verifying it: the path form wins over the
 * query form; the query parameter is removed either way so it never reaches a cache key.
 */
export function splitRequestToken (rawUrl: string): SplitUrl {
  let url = originForm(rawUrl)
  let token: string | undefined
  let source: TokenSource | undefined
  let stripped = false
  if (url.startsWith(PATH_PREFIX)) {
    stripped = true
    const end = url.indexOf('/', PATH_PREFIX.length)
    const stop = end < 0 ? endOfPath(url) : end
    token = url.slice(PATH_PREFIX.length, stop)
    source = 'path'
    url = end < 0 ? `/${url.slice(stop)}` : url.slice(end)
  }
  const q = url.indexOf('?')
  if (q >= 0 && url.includes(QUERY_KEY, q)) {
    const { value, rest, removed } = takeQueryParam(url.slice(q + 1))
    if (removed) stripped = true
    if (token === undefined && value !== undefined) {
      token = value
      source = 'query'
    }
    url = rest === '' ? url.slice(0, q) : `${url.slice(0, q)}?${rest}`
  }
  const pathEnd = url.indexOf('?')
  return { token: token === '' ? undefined : token, source: token === '' ? undefined : source, url, path: pathEnd < 0 ? url : url.slice(0, pathEnd), stripped }
}

/** Strips `scheme://authority` from an absolute-form request target (RFC 9112 §3.2.2). */
function originForm (rawUrl: string): string {
  if (rawUrl.startsWith('/')) return rawUrl
  const scheme = rawUrl.indexOf('://')
  if (scheme < 0) return rawUrl
  const slash = rawUrl.indexOf('/', scheme + 3)
  return slash < 0 ? '/' : rawUrl.slice(slash)
}

function endOfPath (url: string): number {
  const q = url.indexOf('?')
  return q < 0 ? url.length : q
}

/** Removes every `se_token` parameter, keeping the others byte for byte; returns the first value. */
function takeQueryParam (query: string): { value: string | undefined, rest: string, removed: boolean } {
  let value: string | undefined
  let removed = false
  const kept: string[] = []
  for (const pair of query.split('&')) {
    if (pair.startsWith(QUERY_KEY)) {
      value ??= safeDecode(pair.slice(QUERY_KEY.length))
      removed = true
      continue
    }
    kept.push(pair)
  }
  return { value, rest: kept.join('&'), removed }
}

function safeDecode (text: string): string {
  // base64url never needs escaping; a token that does is malformed and fails verification
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
