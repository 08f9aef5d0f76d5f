/**
 * Issuing playback tokens at steering rate. Signing (JSON, base64url, HMAC-SHA256) costs a few
 * microseconds, more than the rest of a steering decision, and the claims of most decisions
 * repeat: every viewer of one title in one country gets the same path ACL and country, and
 * the expiry only has to be right to within a bucket. So a signed token is reused for every
 * decision with the same (key id, title, country, client IP when tokens are bound to it, expiry
 * bucket).
 *
 * The expiry is rounded up to a multiple of the bucket, so a token's lifetime is within
 * `[ttl, ttl + bucket)`: never shorter than configured, at most one bucket longer. When the
 * bucket moves on, every kept token is dropped at once. Memory is bounded by two generations
 * of at most `maxEntries / 2` tokens each (~0.5 KB a token): when the newer one is full, the
 * older is dropped and a lookup found only in the older is moved to the newer, so the tokens
 * in use stay and a working set a bit larger than one generation degrades gently instead of
 * being dropped all at once.
 *
 * A reused token means the `sid` claim names the signed token, not one viewer: see
 * lib/protocol/token.ts ({@link TokenClaims.sid}).
 */
import { randomBytes } from 'node:crypto'
import type { TokenSigner, UnsignedClaims } from '../lib/protocol/token.ts'

/** Options of {@link TokenIssuer}. */
export interface TokenIssuerOptions {
  readonly signer: TokenSigner
  /** Shortest lifetime of an issued token (s). */
  readonly ttlSeconds: number
  /** Expiries are rounded up to a multiple of this (s); default a tenth of the TTL, within [1, 60]. */
  readonly bucketSeconds?: number
  /** Signed tokens kept for reuse (two generations of half each); default 32,768 (~17 MB at most). */
  readonly maxEntries?: number
}

/** A token and the claims it carries. */
export interface IssuedToken {
  readonly token: string
  readonly claims: UnsignedClaims
}

const DEFAULT_MAX_ENTRIES = 32_768

/** Signs tokens, reusing one per (key id, title, country, bound IP, expiry bucket). */
export class TokenIssuer {
  readonly #signer: TokenSigner
  readonly #ttlSeconds: number
  readonly #bucketSeconds: number
  readonly #maxEntries: number
  // Token ids: a random per-instance prefix and a counter (unique per instance, which is all
  // logs need; randomBytes per token would cost more than the HMAC).
  readonly #sidPrefix = randomBytes(4).toString('base64url')
  #sidCounter = 0
  /**
   * Tokens of the current expiry (all share `#exp`), newer and older generation, by scope
   * (country, and the bound IP) and then title. Without a bound IP both are strings a decision
   * already holds, so nothing is concatenated; with one, the scope is `country\0ip`, one short
   * concatenation per decision (the title, the long part, is never copied into a key).
   */
  #tokens = new Generation()
  #older = new Generation()
  #exp = -1
  #signed = 0
  #reused = 0

  constructor (options: TokenIssuerOptions) {
    const ttl = options.ttlSeconds
    if (!Number.isSafeInteger(ttl) || ttl < 1) throw new TypeError(`Expected options.ttlSeconds to be a positive integer, got ${String(ttl)}`)
    const bucket = options.bucketSeconds ?? Math.min(60, Math.max(1, Math.floor(ttl / 10)))
    if (!Number.isSafeInteger(bucket) || bucket < 1) throw new TypeError(`Expected options.bucketSeconds to be a positive integer, got ${String(options.bucketSeconds)}`)
    const max = options.maxEntries ?? DEFAULT_MAX_ENTRIES
    if (!Number.isSafeInteger(max) || max < 0) throw new TypeError(`Expected options.maxEntries to be a non-negative integer, got ${String(options.maxEntries)}`)
    this.#signer = options.signer
    this.#ttlSeconds = ttl
    this.#bucketSeconds = bucket
    this.#maxEntries = max
  }

  /** Tokens signed and tokens handed out again (tests, metrics). */
  get stats (): { readonly signed: number, readonly reused: number } {
    return { signed: this.#signed, reused: this.#reused }
  }

  /**
   * The token for a title (`path`, the ACL prefix), a country and an optional bound IP, issued
   * at `nowMs`; `untilMs`: a licence window's end, which caps the expiry (such a token is
   * signed for this decision alone: only decisions in a window's last TTL need one).
   */
  issue (path: string, country: string | undefined, ip: string | undefined, nowMs: number, untilMs?: number): IssuedToken {
    const bucket = this.#bucketSeconds
    const exp = Math.ceil((nowMs / 1000 + this.#ttlSeconds) / bucket) * bucket
    if (untilMs !== undefined && Math.floor(untilMs / 1000) < exp) return this.#sign(path, country, ip, Math.max(Math.floor(nowMs / 1000) + 1, Math.floor(untilMs / 1000)))
    if (exp !== this.#exp) {
      this.#tokens = new Generation()
      this.#older = new Generation()
      this.#exp = exp
    }
    // the key id is fixed per signer, so it does not need to be in the key
    const scope = ip === undefined ? country ?? '' : `${country ?? ''}\u0000${ip}`
    const kept = this.#tokens.get(scope, path)
    if (kept !== undefined) {
      this.#reused++
      return kept
    }
    const old = this.#older.get(scope, path)
    if (old !== undefined) {
      this.#reused++
      this.#keep(scope, path, old)
      return old
    }
    const issued = this.#sign(path, country, ip, exp)
    this.#keep(scope, path, issued)
    return issued
  }

  #sign (path: string, country: string | undefined, ip: string | undefined, exp: number): IssuedToken {
    const claims: UnsignedClaims = {
      exp,
      path,
      ...(ip === undefined ? {} : { ip }),
      ...(country === undefined ? {} : { country }),
      sid: `${this.#sidPrefix}${(this.#sidCounter++).toString(36)}`,
    }
    this.#signed++
    return { token: this.#signer.sign(claims), claims }
  }

  #keep (scope: string, path: string, issued: IssuedToken): void {
    if (this.#maxEntries === 0) return
    if (this.#tokens.size >= Math.max(1, this.#maxEntries >> 1)) {
      this.#older = this.#tokens
      this.#tokens = new Generation()
    }
    this.#tokens.set(scope, path, issued)
  }
}

/** One generation of kept tokens: by scope, then title, with the total count. */
class Generation {
  readonly #byScope = new Map<string, Map<string, IssuedToken>>()
  #size = 0

  get size (): number {
    return this.#size
  }

  get (scope: string, path: string): IssuedToken | undefined {
    return this.#byScope.get(scope)?.get(path)
  }

  set (scope: string, path: string, issued: IssuedToken): void {
    let paths = this.#byScope.get(scope)
    if (paths === undefined) {
      paths = new Map()
      this.#byScope.set(scope, paths)
    }
    const before = paths.size
    paths.set(path, issued)
    this.#size += paths.size - before
  }
}
