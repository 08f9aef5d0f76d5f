/**
 * Playback tokens: what the control plane signs at steering time and every node verifies.
 *
 * Wire form: `<payload>.<signature>`, both base64url (RFC 4648 §5) without padding, so the
 * token fits in a path segment. The payload is compact JSON `{ v, k, e, p, n?, i?, c?, s? }`
 * (version, key id, expiry, path prefix, not-before, client IP, country, token id); the
 * signature is HMAC-SHA256 (RFC 2104) over `streamedge-token-v1.` + the payload text, so the
 * exact bytes are signed and no JSON canonicalisation is needed.
 *
 * Keys rotate by key id with overlap: the signer uses one active key, verifiers accept every
 * key they hold. Signatures are compared in constant time. Secrets live in private fields and
 * never appear in messages, JSON or `util.inspect` output.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto'

/** Claims a token carries. Times are Unix seconds (RFC 7519 style). */
export interface TokenClaims {
  /** Id of the key that signed it. */
  readonly kid: string
  /** Expiry: invalid from this second on. */
  readonly exp: number
  /** Not valid before this second (optional). */
  readonly nbf?: number
  /** Path-prefix ACL: the token covers this path, and everything below it when it ends in `/`. */
  readonly path: string
  /** Canonical client IP the token is bound to (optional; risky behind CGNAT or on mobile). */
  readonly ip?: string
  /** ISO 3166-1 alpha-2 country the licence decision was made for (informational for nodes). */
  readonly country?: string
  /**
   * Token id, for logs (optional; nodes ignore it). The control plane reuses one signed token
   * for every steering decision with the same key id, title, country, bound IP and expiry
   * bucket (control-plane/token-issuer.ts), so a sid names a signed token, shared by the
   * viewers it was handed to within one bucket, not one playback session. It lets a decision
   * log line be matched to the token a player shows later; it grants nothing.
   */
  readonly sid?: string
}

/** Claims to sign; the key id comes from the signer. */
export type UnsignedClaims = Omit<TokenClaims, 'kid'>

/** Why a token was refused (stable strings: they go to logs, metrics and 403 bodies). */
export type TokenRejectReason =
  | 'malformed' | 'unknown-key' | 'bad-signature' | 'expired' | 'not-yet-valid'
  | 'out-of-scope' | 'unsafe-path' | 'ip-mismatch'

/** Outcome of {@link TokenVerifier.verify}. */
export type TokenVerifyResult =
  | { readonly ok: true, readonly claims: TokenClaims }
  | { readonly ok: false, readonly reason: TokenRejectReason }

/** What a request looks like to the verifier. */
export interface TokenVerifyContext {
  readonly nowMs: number
  /** Raw request path (no query), still percent-encoded. Omit to check only signature and time. */
  readonly path?: string
  /** Canonical client IP; required for tokens bound to an IP (else `ip-mismatch`). */
  readonly clientIp?: string | undefined
}

/** Query parameter that may carry a token instead of the path. */
export const TOKEN_QUERY_PARAM = 'se_token'
/** First path segment of a path-carried token: `/t/<token>/vod/title/master.m3u8`. */
export const TOKEN_PATH_SEGMENT = 't'

const MAC_CONTEXT = 'streamedge-token-v1.'
const KID_RE = /^[A-Za-z0-9_-]{1,32}$/
const SIGNATURE_RE = /^[A-Za-z0-9_-]{43}$/
const PAYLOAD_RE = /^[A-Za-z0-9_-]{8,4096}$/
const COUNTRY_RE = /^[A-Z]{2}$/
/** Shorter secrets are refused: HMAC-SHA256 keys should carry at least 128 bits. */
export const MIN_SECRET_LENGTH = 16

/** One HMAC key. The secret is held privately and cannot be read back. */
export class TokenKey {
  readonly kid: string
  readonly #key: KeyObject

  constructor (kid: string, secret: string | Buffer) {
    if (typeof kid !== 'string' || !KID_RE.test(kid)) {
      throw new TypeError(`Expected a token key id of 1-32 letters, digits, '_' or '-', got ${JSON.stringify(kid)}`)
    }
    const length = typeof secret === 'string' ? Buffer.byteLength(secret) : secret.length
    if (length < MIN_SECRET_LENGTH) {
      // the secret itself is never echoed
      throw new TypeError(`Expected the secret of token key ${kid} to be at least ${MIN_SECRET_LENGTH} bytes, got ${length}`)
    }
    this.kid = kid
    this.#key = createSecretKey(typeof secret === 'string' ? Buffer.from(secret) : secret)
  }

  /** HMAC-SHA256 of the token context + `payload`. */
  mac (payload: string): Buffer {
    return createHmac('sha256', this.#key).update(MAC_CONTEXT).update(payload).digest()
  }

  /** {@link TokenKey.mac} as unpadded base64url, the form tokens carry (cheaper than encoding the Buffer). */
  macText (payload: string): string {
    return createHmac('sha256', this.#key).update(MAC_CONTEXT).update(payload).digest('base64url')
  }

  toJSON (): { kid: string } {
    return { kid: this.kid }
  }
}

/**
 * Parses `kid:secret` entries (config lists). `field` names the setting in error messages,
 * which never contain a secret.
 */
export function parseTokenKeys (entries: readonly string[], field: string): TokenKey[] {
  const keys: TokenKey[] = []
  const seen = new Set<string>()
  entries.forEach((entry, i) => {
    const colon = entry.indexOf(':')
    if (colon <= 0) throw new TypeError(`Expected ${field}[${i}] to look like kid:secret, got an entry without a key id`)
    const kid = entry.slice(0, colon)
    if (seen.has(kid)) throw new TypeError(`Expected ${field} to have unique key ids, got ${kid} twice`)
    seen.add(kid)
    try {
      keys.push(new TokenKey(kid, entry.slice(colon + 1)))
    } catch (err) {
      throw new TypeError(`${field}[${i}]: ${(err as Error).message}`)
    }
  })
  return keys
}

/** Signs tokens with the active key. */
export class TokenSigner {
  readonly #key: TokenKey

  /** `activeKid` defaults to the first key. */
  constructor (keys: readonly TokenKey[], activeKid?: string) {
    if (keys.length === 0) throw new TypeError('Expected at least one token key, got none')
    const key = activeKid === undefined ? keys[0] : keys.find((k) => k.kid === activeKid)
    if (key === undefined) throw new TypeError(`Expected the active token key id to be one of ${keys.map((k) => k.kid).join(', ')}, got ${JSON.stringify(activeKid)}`)
    this.#key = key
  }

  /** Id of the key new tokens are signed with. */
  get activeKid (): string {
    return this.#key.kid
  }

  /** The token for `claims`. */
  sign (claims: UnsignedClaims): string {
    checkClaims(claims)
    const wire: WireClaims = { v: 1, k: this.#key.kid, e: Math.floor(claims.exp), p: claims.path }
    if (claims.nbf !== undefined) wire.n = Math.floor(claims.nbf)
    if (claims.ip !== undefined) wire.i = claims.ip
    if (claims.country !== undefined) wire.c = claims.country
    if (claims.sid !== undefined) wire.s = claims.sid
    const payload = Buffer.from(JSON.stringify(wire)).toString('base64url')
    return `${payload}.${this.#key.macText(payload)}`
  }
}

/** Verifies tokens against every key it holds (old and new keys overlap during a rotation). */
export class TokenVerifier {
  readonly #keys: ReadonlyMap<string, TokenKey>
  readonly #leewaySeconds: number

  /** `leewaySeconds` tolerates clock skew between signer and verifier on `exp` and `nbf` (default 0). */
  constructor (keys: readonly TokenKey[], options: { readonly leewaySeconds?: number } = {}) {
    const leeway = options.leewaySeconds ?? 0
    if (!Number.isSafeInteger(leeway) || leeway < 0) throw new TypeError(`Expected options.leewaySeconds to be a non-negative integer, got ${String(leeway)}`)
    this.#keys = new Map(keys.map((key) => [key.kid, key]))
    this.#leewaySeconds = leeway
  }

  /** Key ids this verifier accepts. */
  get kids (): readonly string[] {
    return [...this.#keys.keys()]
  }

  /** Checks signature, time window, path scope and IP binding, in that order. */
  verify (token: string, context: TokenVerifyContext): TokenVerifyResult {
    const dot = token.indexOf('.')
    if (dot < 0) return reject('malformed')
    const payload = token.slice(0, dot)
    const signature = token.slice(dot + 1)
    if (!PAYLOAD_RE.test(payload) || !SIGNATURE_RE.test(signature)) return reject('malformed')
    const claims = decodeClaims(payload)
    if (claims === undefined) return reject('malformed')
    const key = this.#keys.get(claims.kid)
    if (key === undefined) return reject('unknown-key')
    // Compare the encoded text: two spellings of one signature (unused low bits) must not both pass.
    const expected = Buffer.from(key.macText(payload))
    if (!timingSafeEqual(expected, Buffer.from(signature))) return reject('bad-signature')
    const nowSeconds = context.nowMs / 1000
    if (nowSeconds >= claims.exp + this.#leewaySeconds) return reject('expired')
    if (claims.nbf !== undefined && nowSeconds < claims.nbf - this.#leewaySeconds) return reject('not-yet-valid')
    if (context.path !== undefined) {
      if (!isSafePath(context.path)) return reject('unsafe-path')
      if (!pathInScope(context.path, claims.path)) return reject('out-of-scope')
    }
    if (claims.ip !== undefined && claims.ip !== context.clientIp) return reject('ip-mismatch')
    return { ok: true, claims }
  }
}

/**
 * True when `path` is inside the ACL `prefix`: equal to it, or below it. A prefix without a
 * trailing `/` covers itself and its subtree, never siblings (`/vod/a` does not cover `/vod/ab`).
 */
export function pathInScope (path: string, prefix: string): boolean {
  if (path === prefix) return true
  if (prefix.endsWith('/')) return path.startsWith(prefix)
  return path.startsWith(prefix) && path.charCodeAt(prefix.length) === 0x2f
}

/**
 * True for a path that means the same thing before and after any decoding or normalisation:
 * absolute, no dot segments (RFC 3986 §5.2.4), not even with path parameters (`..;x`, which
 * Tomcat, Jetty and Spring strip to `..`), no backslashes, no encoded dots, slashes,
 * backslashes, NULs or percent signs (double encoding), no control characters. Anything a
 * server or origin might decode into a different path than the one checked is refused, not
 * normalised. One pass, no allocation: edges run it on every request.
 */
export function isSafePath (path: string): boolean {
  if (path.charCodeAt(0) !== 0x2f) return false
  let segmentStart = 1
  let nameEnd = -1
  for (let i = 1; i <= path.length; i++) {
    const c = i === path.length ? 0x2f : path.charCodeAt(i)
    if (c === 0x2f) {
      // a segment of exactly "." or "..", before any ";parameters"
      const length = (nameEnd < 0 ? i : nameEnd) - segmentStart
      if ((length === 1 || length === 2) && path.charCodeAt(segmentStart) === 0x2e && (length === 1 || path.charCodeAt(segmentStart + 1) === 0x2e)) return false
      segmentStart = i + 1
      nameEnd = -1
      continue
    }
    if (c === 0x3b && nameEnd < 0) nameEnd = i
    if (c < 0x20 || c === 0x7f || c === 0x5c) return false
    if (c === 0x25 && isUnsafeEscape(path.charCodeAt(i + 1), path.charCodeAt(i + 2))) return false
  }
  return true
}

/** `%2E`, `%2F`, `%25`, `%5C` and `%00`, either case. */
function isUnsafeEscape (a: number, b: number): boolean {
  const lower = b | 0x20
  if (a === 0x32) return lower === 0x65 || lower === 0x66 || b === 0x35 // 2e 2f 25
  if (a === 0x35) return lower === 0x63 // 5c
  return a === 0x30 && b === 0x30 // 00
}

interface WireClaims {
  v: 1
  k: string
  e: number
  p: string
  n?: number
  i?: string
  c?: string
  s?: string
}

function decodeClaims (payload: string): TokenClaims | undefined {
  let wire: unknown
  try {
    wire = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof wire !== 'object' || wire === null) return undefined
  const w = wire as Record<string, unknown>
  if (w['v'] !== 1 || typeof w['k'] !== 'string' || typeof w['p'] !== 'string' || !isSeconds(w['e'])) return undefined
  // As strict as the signer: an empty or relative ACL would otherwise match every path (pathInScope).
  if (!isSafePath(w['p'])) return undefined
  if (w['n'] !== undefined && !isSeconds(w['n'])) return undefined
  for (const optional of ['i', 'c', 's']) if (w[optional] !== undefined && typeof w[optional] !== 'string') return undefined
  return {
    kid: w['k'],
    exp: w['e'] as number,
    path: w['p'],
    ...(w['n'] === undefined ? {} : { nbf: w['n'] as number }),
    ...(w['i'] === undefined ? {} : { ip: w['i'] as string }),
    ...(w['c'] === undefined ? {} : { country: w['c'] as string }),
    ...(w['s'] === undefined ? {} : { sid: w['s'] as string }),
  }
}

function checkClaims (claims: UnsignedClaims): void {
  if (!isSeconds(claims.exp)) throw new TypeError(`Expected claims.exp to be Unix seconds, got ${String(claims.exp)}`)
  if (claims.nbf !== undefined && !isSeconds(claims.nbf)) throw new TypeError(`Expected claims.nbf to be Unix seconds, got ${String(claims.nbf)}`)
  if (typeof claims.path !== 'string' || !isSafePath(claims.path)) {
    throw new TypeError(`Expected claims.path to be a safe absolute path, got ${JSON.stringify(claims.path)}`)
  }
  if (claims.country !== undefined && !COUNTRY_RE.test(claims.country)) {
    throw new TypeError(`Expected claims.country to be an ISO 3166-1 alpha-2 code, got ${JSON.stringify(claims.country)}`)
  }
}

function isSeconds (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function reject (reason: TokenRejectReason): TokenVerifyResult {
  return { ok: false, reason }
}
