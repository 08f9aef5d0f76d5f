/**
 * The edge's upstream: a list of shields, then (optionally) the origin.
 *
 * Per request the shields are ranked by rendezvous hashing of the cache key, so every edge
 * sends a given object to the same shield and the shield tier holds one copy of it (ATS
 * `consistent_hash` parents, Varnish's shard director). Shields whose breaker is open are
 * skipped; a shield that cannot be reached, times out before its response head, or answers
 * a 5xx of its own is charged a failure and the next one is tried (nginx `proxy_next_upstream
 * error timeout http_5xx`, ATS "unavailable server retry"). The chain returns once some
 * upstream produced a response head: after that nothing is retried (pingora: "nothing can be
 * done once downstream headers are sent"), and a body that fails mid-way reaches the
 * pipeline as a stream error. Only GET and HEAD without a body are retried.
 *
 * A 5xx that a shield relays from *its* upstream (its Cache-Status says it forwarded and got
 * that status, or names an upstream error) is not the shield's fault: its breaker is not
 * charged, the next shield may still be asked, but the edge never goes to the origin itself
 * after one, because the shields already did and a struggling origin needs fewer requests,
 * not more. A shield's 503 "origin overloaded" is returned at once for the same reason.
 * With every shield down, the edge goes to the origin directly unless `allowDirectOrigin`
 * is false (ATS `go_direct`).
 *
 * A shield's response head can take as long as its own origin attempts (failover, stale-if-error),
 * so the shields' first-byte timeout must be longer than the shield's to its origins (edge/main.ts
 * gives them edge.shield.firstByteTimeoutMs): giving up first goes around a shield about to answer.
 */
import { CdnError } from '../../lib/errors.ts'
import { HashRing } from '../../lib/hash-ring.ts'
import { parseCacheStatus } from '../../lib/http/cache-status.ts'
import type { Logger } from '../../lib/log.ts'
import { checkBreakerSettings, watchUpstream, type BreakerPermit, type BreakerSettings, type BreakerState, type ProbeSettings, type UpstreamHealth } from './circuit-breaker.ts'
import { TrackedBodies, discardKept, settleBody, settleOnError } from './tracked-bodies.ts'
import { toUpstreamError, type Upstream, type UpstreamHeaders, type UpstreamRequest, type UpstreamResponse } from './upstream.ts'

/** One shield of the chain. */
export interface ChainShield {
  readonly upstream: Upstream
  /** Ring identity; every edge must use the same ids for the same shields (default: `upstream.name`). */
  readonly id?: string
  /** Relative share of keys (default 1). */
  readonly weight?: number
  /** A separate small pool for active probes, so they never queue behind traffic; closed with the chain. */
  readonly probeUpstream?: Upstream | undefined
}

/** Options of {@link UpstreamChain}. */
export interface UpstreamChainOptions {
  /** At least one shield. */
  readonly shields: readonly ChainShield[]
  /** The origin, for when no shield can answer; required when `allowDirectOrigin` is true. */
  readonly origin?: Upstream | undefined
  /** Go to the origin when every shield is down or failed (default true). */
  readonly allowDirectOrigin?: boolean
  /** Passive health per shield. */
  readonly breaker: BreakerSettings
  /** Active probes per shield (e.g. GET /readyz); off when undefined. */
  readonly probe?: ProbeSettings | undefined
  /** Monotonic clock for the breakers (tests). */
  readonly now?: () => number
  readonly logger?: Logger | undefined
}

/** A shield's health as the chain sees it. */
export interface ShieldHealth {
  readonly id: string
  readonly name: string
  readonly state: BreakerState
  /** Marked down by its active probe. */
  readonly probeDown: boolean
}

interface Member {
  readonly id: string
  readonly upstream: Upstream
  readonly probeUpstream: Upstream | undefined
  readonly health: UpstreamHealth
}

/** Statuses after which the next shield is tried (a 501 or 505 would be the same everywhere). */
const FAILOVER_STATUSES: ReadonlySet<number> = new Set([500, 502, 503, 504])

/** Edge → shields (consistent hashing, failover) → origin. */
export class UpstreamChain implements Upstream {
  readonly name = 'shields'
  readonly #ring: HashRing<number>
  readonly #members: readonly Member[]
  readonly #origin: Upstream | undefined
  readonly #allowDirectOrigin: boolean
  readonly #logger: Logger | undefined
  /** Bodies still streaming from shields or the origin; close() cuts them so it never waits on a body nobody reads. */
  readonly #bodies = new TrackedBodies()
  #closed: Promise<void> | undefined

  constructor (options: UpstreamChainOptions) {
    if (!Array.isArray(options.shields) || options.shields.length === 0) {
      throw new TypeError(`Expected options.shields to be a non-empty array, got ${String(options.shields)}`)
    }
    checkBreakerSettings(options.breaker, 'options.breaker')
    const allowDirectOrigin = options.allowDirectOrigin ?? true
    if (allowDirectOrigin && options.origin === undefined) {
      throw new TypeError('Expected options.origin to be set when options.allowDirectOrigin is true, got undefined')
    }
    this.#logger = options.logger
    options.shields.forEach((s, i) => {
      if (s === null || typeof s !== 'object' || typeof s.upstream?.request !== 'function') {
        throw new TypeError(`Expected options.shields[${i}].upstream to be an Upstream, got ${String(s?.upstream)}`)
      }
    })
    // The ring validates ids and weights before any probe starts, so a bad option leaks no timers.
    this.#ring = new HashRing(options.shields.map((s, i) => ({
      id: s.id ?? s.upstream.name,
      value: i,
      ...(s.weight === undefined ? {} : { weight: s.weight }),
    })))
    this.#members = options.shields.map((s, i): Member => {
      const id = this.#ring.ids[i]!
      const health = watchUpstream(s.upstream, {
        breaker: options.breaker,
        probe: options.probe,
        probeUpstream: s.probeUpstream,
        now: options.now,
        onStateChange: (change) => {
          const fields = { upstream: s.upstream.name, shield: id, from: change.from, to: change.to, reason: change.reason }
          if (change.to === 'closed') this.#logger?.info(fields, 'shield health changed')
          else this.#logger?.warn(fields, 'shield health changed')
        },
      })
      return { id, upstream: s.upstream, probeUpstream: s.probeUpstream, health }
    })
    this.#origin = options.origin
    this.#allowDirectOrigin = allowDirectOrigin
  }

  /** Shield names in preference order for `key` (debugging, tests). */
  rank (key: string): string[] {
    return this.#ring.rank(key).map((i) => this.#members[i]!.upstream.name)
  }

  /** Each shield's breaker state. */
  health (): ShieldHealth[] {
    return this.#members.map((m) => ({
      id: m.id,
      name: m.upstream.name,
      state: m.health.breaker.state,
      probeDown: m.health.probe?.healthy === false,
    }))
  }

  async request (req: UpstreamRequest): Promise<UpstreamResponse> {
    const retryable = (req.method === 'GET' || req.method === 'HEAD') && (req.body === undefined || req.body === null)
    const failures: string[] = []
    let lastError: CdnError | undefined
    let kept: UpstreamResponse | undefined
    let relayedUpstreamFailure = false
    let attempted = false
    for (const index of this.#ring.rank(req.key ?? req.path)) {
      const member = this.#members[index]!
      if (attempted && !retryable) break
      throwIfAborted(req.signal)
      const permit = member.health.breaker.acquire()
      if (permit === undefined) {
        failures.push(`${member.upstream.name}: marked down`)
        continue
      }
      attempted = true
      let res: UpstreamResponse
      try {
        res = await member.upstream.request(req)
      } catch (err) {
        const error = toUpstreamError(err, member.upstream.name)
        settleOnError(permit, error)
        if (error.code === 'CDN_ERR_CLIENT_ABORTED') {
          discardKept(kept)
          throw error
        }
        lastError = error
        failures.push(`${member.upstream.name}: ${error.code}`)
        this.#logger?.debug({ upstream: member.upstream.name, errCode: error.code, cacheKey: req.key }, 'shield failed; trying the next')
        continue
      }
      const verdict = FAILOVER_STATUSES.has(res.status) ? relaysUpstreamFailure(res.headers) : 'ok'
      if (verdict === 'ok' || verdict === 'overloaded') {
        discardKept(kept)
        return this.#track(res, member.upstream.name, permit)
      }
      if (verdict === 'relayed') {
        permit.success()
        relayedUpstreamFailure = true
      } else {
        permit.failure()
      }
      failures.push(`${member.upstream.name}: ${res.status}`)
      discardKept(kept)
      kept = { ...res, upstream: member.upstream.name }
      this.#logger?.debug({ upstream: member.upstream.name, status: res.status, relayed: verdict === 'relayed', cacheKey: req.key }, 'shield answered 5xx; trying the next')
    }
    if (!relayedUpstreamFailure && this.#allowDirectOrigin && this.#origin !== undefined && (retryable || !attempted)) {
      return await this.#direct(req, failures, kept)
    }
    if (kept !== undefined) return kept
    throw this.#exhausted(req, failures, lastError)
  }

  /** Every shield is down or failed on its own account: ask the origin. A shield's 5xx still beats an origin error. */
  async #direct (req: UpstreamRequest, failures: readonly string[], kept: UpstreamResponse | undefined): Promise<UpstreamResponse> {
    throwIfAborted(req.signal)
    this.#logger?.warn({ cacheKey: req.key, path: req.path, failures }, 'no shield answered; going to the origin directly')
    try {
      const res = await this.#origin!.request(req)
      discardKept(kept)
      return this.#track(res, res.upstream, undefined)
    } catch (err) {
      if (kept === undefined) throw err
      return kept
    }
  }

  #exhausted (req: UpstreamRequest, failures: readonly string[], lastError: CdnError | undefined): CdnError {
    const why = failures.length === 0 ? 'no shield configured' : failures.join('; ')
    const direct = this.#allowDirectOrigin ? '' : ' and direct origin access is disabled'
    const message = `No shield could serve ${req.path} (${why})${direct}`
    const code = lastError?.code === 'CDN_ERR_UPSTREAM_TIMEOUT' ? 'CDN_ERR_UPSTREAM_TIMEOUT' : 'CDN_ERR_UPSTREAM_UNAVAILABLE'
    return new CdnError(code, message, lastError === undefined ? {} : { cause: lastError })
  }

  /** Wraps the body: settles the shield's permit when it is done (a broken body is a failure, a dropped one no verdict). */
  #track (res: UpstreamResponse, name: string, permit: BreakerPermit | undefined): UpstreamResponse {
    return this.#bodies.track(res, name, (outcome, err) => {
      if (permit !== undefined) settleBody(permit, outcome, err, name)
    })
  }

  /** Stops probes, cuts bodies still streaming, closes the connection pools. Idempotent. */
  close (): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  async #close (): Promise<void> {
    for (const m of this.#members) m.health.probe?.stop()
    this.#bodies.destroyAll()
    await Promise.all([
      ...this.#members.flatMap((m) => [m.upstream.close(), m.probeUpstream?.close()]),
      this.#origin?.close(),
    ])
  }
}

function throwIfAborted (signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) throw new CdnError('CDN_ERR_CLIENT_ABORTED', 'Request aborted before an upstream answered')
}

/**
 * Whether a 5xx from a shield is one the shield relays from its own upstream. Any Cache-Status
 * member (ours are appended, RFC 9211 §2) with `fwd-status` or an upstream error `detail` says
 * a cache forwarded the request and this is what came back.
 */
export function relaysUpstreamFailure (headers: UpstreamHeaders): 'overloaded' | 'relayed' | 'own' {
  const entries = parseCacheStatus(headers['cache-status'])
  let relayed = false
  for (const entry of entries) {
    if (entry.detail === 'CDN_ERR_UPSTREAM_OVERLOADED') return 'overloaded'
    if (entry.fwdStatus !== undefined || (entry.detail !== undefined && RELAYED_DETAILS.test(entry.detail))) relayed = true
  }
  return relayed ? 'relayed' : 'own'
}

const RELAYED_DETAILS = /^CDN_ERR_(UPSTREAM_|LOCK_TIMEOUT)/
