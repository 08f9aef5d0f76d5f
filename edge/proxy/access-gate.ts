/**
 * The door of a cache node, before the cache: CORS for browser players, and playback
 * tokens (edge/auth/token-check.ts). A request with a valid token continues with the
 * token taken out of its URL, so every viewer shares one cached copy; the token is kept
 * aside for the master-playlist rewrite (content steering needs the session's token).
 *
 * A playlist asked for with the token in the `se_token` query is answered with a 302 to the
 * same URL with the token in the path (`/t/<token>/…`): relative URIs in the playlist are
 * resolved against the redirected URL (RFC 3986 §5.2), so its renditions, segments, keys and
 * maps keep the token. Resolved against a query-token URL they would lose it (and get 403).
 *
 * CORS: every answer says `Access-Control-Allow-Origin: *`. After a cross-origin
 * redirect (the steering 302) browsers send `Origin: null`, so an allow-list of real
 * origins would break playback; the token, not the origin, is what authorises.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastRequest } from '../../lib/http/fast-front.ts'
import type { CacheNodeMetrics } from '../../lib/metrics.ts'
import type { Logger } from '../../lib/log.ts'
import { TOKEN_PATH_SEGMENT } from '../../lib/protocol/token.ts'
import { checkRequestToken, splitRequestToken, type TokenCheck } from '../auth/token-check.ts'
import { isPlaylistUrl } from '../hls/media-kind.ts'
import type { Forwarding } from './forwarding.ts'

export interface AccessGateOptions {
  /** Verify playback tokens; every request without a valid one gets 403. */
  readonly token?: TokenCheck | undefined
  readonly forwarding: Forwarding
  readonly metrics: CacheNodeMetrics
  readonly logger: Logger
  readonly cacheName: string
  readonly now: () => number
}

/** Response headers every answer carries (see the module comment). */
export const CORS_HEADERS: readonly string[] = ['access-control-allow-origin', '*', 'access-control-expose-headers', 'cache-status, age, content-range, content-length, via']

/** A request let in: its URL without the token, and the token. */
export interface Admitted {
  readonly url: string
  readonly token: string | undefined
}

type Door =
  | Admitted & { readonly ok: true }
  | { readonly ok: false, readonly reason: string, readonly location?: undefined }
  | { readonly ok: false, readonly reason?: undefined, readonly location: string }

// Token-shaped text (`payload.signature`, the dot maybe escaped). The lookbehind starts a match
// only where a run of base64url begins, so a long hostile run costs one pass, not a quadratic scan.
const TOKEN_SHAPE_RE = /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{8,}(?:\.|%2[Ee])[A-Za-z0-9_-]{43}/g

/**
 * The path of a refused request for the log. A token in a slot the gate does not read
 * (`//t/<token>/…`, a misspelt prefix) is still a working credential: it never reaches a log.
 */
function redactTokens (path: string): string {
  return path.replace(TOKEN_SHAPE_RE, '<token>')
}

const PREFLIGHT_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, OPTIONS',
  'access-control-allow-headers': 'range, if-range, if-none-match, if-modified-since, cache-control',
  'access-control-max-age': '86400',
  'content-length': '0',
}

export class AccessGate {
  readonly #o: AccessGateOptions
  readonly #tokens = new WeakMap<IncomingMessage, string>()

  constructor (options: AccessGateOptions) {
    this.#o = options
  }

  /** The playback token a request came with (taken out of its URL by `admit`). */
  tokenOf (req: IncomingMessage): string | undefined {
    return this.#tokens.get(req)
  }

  /**
   * Lets a request in (true: continue, with `req.url` rewritten without the token) or
   * answers it here (CORS preflight, 403 for a bad token, 302 to the path form for a playlist
   * with a query token).
   */
  admit (req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      res.writeHead(204, PREFLIGHT_HEADERS)
      res.end()
      return false
    }
    const url = req.url ?? '/'
    const door = this.#door(url, req.socket.remoteAddress, req.headers['x-forwarded-for'])
    if (door.ok) {
      if (door.url !== url) req.url = door.url
      if (door.token !== undefined) this.#tokens.set(req, door.token)
      return true
    }
    if (door.location !== undefined) {
      res.writeHead(302, ['location', door.location, 'content-length', '0', 'cache-control', 'no-store', ...CORS_HEADERS])
      res.end()
      return false
    }
    this.#o.metrics.tokenRejections.inc({ reason: door.reason })
    this.#o.logger.info({ path: redactTokens(splitRequestToken(url).path), reason: door.reason, client: this.#o.forwarding.clientOf(req) }, 'request refused: playback token')
    const body = JSON.stringify({ error: 'CDN_ERR_TOKEN_INVALID', reason: door.reason }) + '\n'
    res.writeHead(403, [
      'content-type', 'application/json',
      'content-length', String(Buffer.byteLength(body)),
      'cache-control', 'no-store',
      'cache-status', `${this.#o.cacheName}; detail=CDN_ERR_TOKEN_INVALID`,
      ...CORS_HEADERS,
    ])
    res.end(req.method === 'HEAD' ? undefined : body)
    return false
  }

  /**
   * `admit` for the fast path (edge/proxy/fast-hit.ts): the URL and token `admit` would
   * continue with, or undefined when `admit` would answer the request itself (a refused
   * token or a playlist to redirect: node:http then takes the request, and `admit` answers it).
   */
  pass (req: FastRequest): Admitted | undefined {
    const door = this.#door(req.target, req.remoteAddress, req.headers['x-forwarded-for'])
    return door.ok ? door : undefined
  }

  /** The token rules of both paths: what the request continues with, or why it is refused. */
  #door (url: string, peer: string | undefined, forwardedFor: string | readonly string[] | undefined): Door {
    const token = this.#o.token
    if (token === undefined || !token.required) {
      const split = splitRequestToken(url)
      // An empty token slot (`?se_token=`, `/t//`) is taken out too: left in, it would reach the
      // origin and split the cache key. A URL without one continues as it came (absolute-form included).
      if (!split.stripped) return { ok: true, url, token: undefined }
      return { ok: true, url: split.url, token: split.token }
    }
    const checked = checkRequestToken(url, this.#o.forwarding.clientFrom(peer, forwardedFor), token.verifier, this.#o.now())
    if (!checked.ok) {
      // a shield's own edges fetch without a player's token (a token they do send was checked)
      if (checked.reason === 'missing' && token.tokenlessFromTrustedProxies === true && this.#o.forwarding.isTrustedPeer(peer)) return { ok: true, url, token: undefined }
      return { ok: false, reason: checked.reason }
    }
    if (checked.source === 'query' && isPlaylistUrl(checked.path)) return { ok: false, location: `/${TOKEN_PATH_SEGMENT}/${checked.token}${checked.path}` }
    return { ok: true, url: checked.path, token: checked.token }
  }
}
