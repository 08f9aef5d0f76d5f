/**
 * The shield's upstream: the origins, chosen per content path and protected from overload.
 *
 * Routing: each origin serves a path prefix (longest prefix wins); a prefix's origins form
 * priority groups, tried lowest priority number first, with a weighted random choice inside
 * a group (ATS parent `weight`, nginx `backup`). Protection: every origin has a concurrency
 * cap with a bounded FIFO queue and a queue-wait deadline; excess load is refused with 503 +
 * Retry-After instead of piling onto the origin. A slot is held until the response BODY is
 * done (or fails, or is dropped), because a streaming body is load on the origin too.
 * Failure handling: a connect error, first-byte timeout or 500/502/503/504 is charged to
 * that origin's breaker and, for GET/HEAD without a body, the request moves to another
 * origin (same group first, then the next group), each origin at most once, up to
 * `retries` extra attempts, and only before a response head is returned. Origins whose
 * breaker is open are skipped without costing an attempt. Overload (a full queue) is not a
 * failure and never spills to a lower-priority origin: backups are for outages.
 */
import { CdnError, isCdnError } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { checkBreakerSettings, checkProbeSettings, watchUpstream, type BreakerPermit, type BreakerSettings, type BreakerState, type ProbeSettings, type UpstreamHealth } from '../edge/proxy/circuit-breaker.ts'
import { TrackedBodies, discardKept, settleBody, settleOnError } from '../edge/proxy/tracked-bodies.ts'
import { HttpUpstream, toUpstreamError, type Upstream, type UpstreamRequest, type UpstreamResponse } from '../edge/proxy/upstream.ts'
import { ConcurrencyLimiter, type LimiterSlot, type LimiterStats } from './concurrency-limiter.ts'

/** One origin serving one path prefix. The same URL may serve several prefixes; it then shares one cap and one breaker. */
export interface OriginSpec {
  /** Base URL; a path in it is prepended to request paths. */
  readonly url: string
  /** Request paths starting with this are routed here (default `/`). */
  readonly prefix?: string
  /** Lower numbers are tried first; same number = same group (default 0). */
  readonly priority?: number
  /** Share of requests inside its group, a positive integer (default 1). */
  readonly weight?: number
  /** Name in logs, metrics and errors (default: the URL's host). */
  readonly name?: string
}

/** Timeouts and pool sizes of each origin connection pool. */
export interface OriginTimeouts {
  readonly connectTimeoutMs: number
  readonly firstByteTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly keepAliveTimeoutMs: number
}

/** Options of {@link OriginPool}. */
export interface OriginPoolOptions {
  readonly origins: readonly OriginSpec[]
  readonly timeouts: OriginTimeouts
  /** Requests in flight per origin (also its connection count). */
  readonly maxConcurrent: number
  /** Requests waiting per origin; more are refused at once. */
  readonly maxQueue: number
  /** Longest wait for a slot. */
  readonly queueTimeoutMs: number
  /** Extra attempts on other origins for GET/HEAD (0 = none). */
  readonly retries: number
  /** Retry-After on overload refusals (default 1). */
  readonly retryAfterSeconds?: number
  readonly breaker: BreakerSettings
  /** Active probes per origin; off when undefined. */
  readonly probe?: ProbeSettings | undefined
  /** Builds each origin's upstream (tests); default HttpUpstream. */
  readonly createUpstream?: (spec: { url: string, name: string, connections: number } & OriginTimeouts) => Upstream
  /** Uniform random in [0, 1) for the weighted choice (tests). */
  readonly random?: () => number
  /** Monotonic clock for breakers and queue deadlines (tests). */
  readonly now?: () => number
  readonly logger?: Logger | undefined
}

/** One origin's state, for logs, metrics and tests. */
export interface OriginHealth extends LimiterStats {
  readonly name: string
  readonly url: string
  readonly state: BreakerState
  readonly probeDown: boolean
}

interface Origin {
  readonly name: string
  readonly url: string
  readonly upstream: Upstream
  /** Probes' own one-connection pool: a probe queued behind `maxConcurrent` busy bodies would time out and mark a busy origin down. */
  readonly probeUpstream: Upstream | undefined
  readonly limiter: ConcurrencyLimiter
  readonly health: UpstreamHealth
}

interface Candidate {
  readonly origin: Origin
  readonly weight: number
}

interface Route {
  readonly prefix: string
  /** Priority groups, lowest number first. */
  readonly groups: readonly (readonly Candidate[])[]
}

/** Statuses that count as the origin failing and allow another origin to be tried. */
const RETRY_STATUSES: ReadonlySet<number> = new Set([500, 502, 503, 504])

/** The origins behind a shield: routing, failover and origin protection. */
export class OriginPool implements Upstream {
  readonly name = 'origins'
  readonly #routes: readonly Route[]
  readonly #origins: readonly Origin[]
  readonly #retries: number
  readonly #random: () => number
  readonly #logger: Logger | undefined
  /** Bodies still streaming from origins; close() cuts them so it never waits on a body nobody reads. */
  readonly #bodies = new TrackedBodies()
  #closed: Promise<void> | undefined

  constructor (options: OriginPoolOptions) {
    const specs = checkOptions(options)
    this.#retries = options.retries
    this.#random = options.random ?? Math.random
    this.#logger = options.logger
    const create = options.createUpstream ?? ((o) => new HttpUpstream(o))
    const byUrl = new Map<string, Origin>()
    const routes = new Map<string, Map<number, Candidate[]>>()
    for (const spec of specs) {
      let origin = byUrl.get(spec.url)
      if (origin === undefined) {
        origin = this.#buildOrigin(spec, options, create)
        byUrl.set(spec.url, origin)
      }
      let groups = routes.get(spec.prefix)
      if (groups === undefined) routes.set(spec.prefix, groups = new Map())
      let group = groups.get(spec.priority)
      if (group === undefined) groups.set(spec.priority, group = [])
      group.push({ origin, weight: spec.weight })
    }
    this.#origins = [...byUrl.values()]
    this.#routes = [...routes.entries()]
      .map(([prefix, groups]) => ({ prefix, groups: [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([, g]) => g) }))
      .sort((a, b) => b.prefix.length - a.prefix.length)
  }

  #buildOrigin (spec: ResolvedSpec, options: OriginPoolOptions, create: NonNullable<OriginPoolOptions['createUpstream']>): Origin {
    const upstream = create({ url: spec.url, name: spec.name, connections: options.maxConcurrent, ...options.timeouts })
    const probeUpstream = options.probe === undefined ? undefined : create({ url: spec.url, name: spec.name, connections: 1, ...options.timeouts })
    const limiter = new ConcurrencyLimiter({
      name: spec.name,
      maxConcurrent: options.maxConcurrent,
      maxQueue: options.maxQueue,
      queueTimeoutMs: options.queueTimeoutMs,
      retryAfterSeconds: options.retryAfterSeconds ?? 1,
      ...(options.now === undefined ? {} : { now: options.now }),
    })
    const health = watchUpstream(upstream, {
      breaker: options.breaker,
      probe: options.probe,
      probeUpstream,
      now: options.now,
      onStateChange: (change) => {
        const fields = { upstream: spec.name, from: change.from, to: change.to, reason: change.reason }
        if (change.to === 'closed') this.#logger?.info(fields, 'origin health changed')
        else this.#logger?.warn(fields, 'origin health changed')
      },
    })
    return { name: spec.name, url: spec.url, upstream, probeUpstream, limiter, health }
  }

  /** Every origin's breaker state and queue counts. */
  health (): OriginHealth[] {
    return this.#origins.map((o) => ({
      name: o.name,
      url: o.url,
      state: o.health.breaker.state,
      probeDown: o.health.probe?.healthy === false,
      ...o.limiter.stats,
    }))
  }

  async request (req: UpstreamRequest): Promise<UpstreamResponse> {
    const route = this.#route(req.path)
    if (route === undefined) throw new CdnError('CDN_ERR_UPSTREAM_UNAVAILABLE', `No origin is configured for ${req.path}`)
    const retryable = (req.method === 'GET' || req.method === 'HEAD') && (req.body === undefined || req.body === null)
    const maxAttempts = retryable ? 1 + this.#retries : 1
    const tried = new Set<Origin>()
    const failures: string[] = []
    let attempts = 0
    let lastError: CdnError | undefined
    let kept: UpstreamResponse | undefined
    for (const group of route.groups) {
      for (;;) {
        if (attempts >= maxAttempts) break
        const origin = this.#choose(group, tried)
        if (origin === undefined) break
        tried.add(origin)
        let slot: LimiterSlot
        try {
          slot = await origin.limiter.acquire(req.signal)
        } catch (err) {
          // Overload ends the request here (no spill to backups); an earlier origin's 5xx still beats a 503.
          if (kept !== undefined && !isCdnError(err, 'CDN_ERR_CLIENT_ABORTED')) return kept
          discardKept(kept)
          throw err
        }
        const permit = origin.health.breaker.acquire()
        if (permit === undefined) { // opened while we queued
          slot.release()
          failures.push(`${origin.name}: marked down`)
          continue
        }
        attempts++
        let res: UpstreamResponse
        try {
          res = await origin.upstream.request(req)
        } catch (err) {
          slot.release()
          const error = toUpstreamError(err, origin.name)
          settleOnError(permit, error)
          if (error.code === 'CDN_ERR_CLIENT_ABORTED') {
            discardKept(kept)
            throw error
          }
          lastError = error
          failures.push(`${origin.name}: ${error.code}`)
          this.#logger?.warn({ upstream: origin.name, errCode: error.code, path: req.path, attempt: attempts }, 'origin request failed')
          continue
        }
        const failed = RETRY_STATUSES.has(res.status)
        if (!failed || attempts >= maxAttempts || !this.#hasAlternative(route, tried)) {
          discardKept(kept)
          return this.#hold(res, origin.name, slot, permit, failed)
        }
        permit.failure()
        failures.push(`${origin.name}: ${res.status}`)
        this.#logger?.warn({ upstream: origin.name, status: res.status, path: req.path, attempt: attempts }, 'origin answered 5xx; trying another')
        discardKept(kept)
        // Kept as the answer should nothing better come; the wrapper reads its (small) body
        // and frees the slot as soon as the origin has sent it, whether or not anyone reads it.
        kept = this.#hold(res, origin.name, slot, permit, true)
      }
    }
    if (kept !== undefined) return kept
    throw exhausted(req, failures, lastError)
  }

  #route (path: string): Route | undefined {
    for (const route of this.#routes) if (path.startsWith(route.prefix)) return route
    return undefined
  }

  /**
   * Picks an untried origin of `group` whose breaker lets a request through: among those
   * with a free slot if any, else among those with queue room, else any (it will refuse
   * with 503), weighted by `weight`.
   */
  #choose (group: readonly Candidate[], tried: ReadonlySet<Origin>): Origin | undefined {
    let free = 0
    let queueable = 0
    let open = 0
    for (const c of group) {
      if (tried.has(c.origin) || !c.origin.health.breaker.available()) continue
      open += c.weight
      if (c.origin.limiter.hasFreeSlot) free += c.weight
      if (c.origin.limiter.canAccept) queueable += c.weight
    }
    if (open === 0) return undefined
    const tier = free > 0 ? 'free' : queueable > 0 ? 'queueable' : 'any'
    const total = tier === 'free' ? free : tier === 'queueable' ? queueable : open
    let r = this.#random() * total
    let last: Origin | undefined
    for (const c of group) {
      if (tried.has(c.origin) || !c.origin.health.breaker.available()) continue
      if (tier === 'free' && !c.origin.limiter.hasFreeSlot) continue
      if (tier === 'queueable' && !c.origin.limiter.canAccept) continue
      last = c.origin
      r -= c.weight
      if (r < 0) return c.origin
    }
    return last
  }

  /** Is there an origin left that a retry could go to? */
  #hasAlternative (route: Route, tried: ReadonlySet<Origin>): boolean {
    for (const group of route.groups) {
      for (const c of group) if (!tried.has(c.origin) && c.origin.health.breaker.available()) return true
    }
    return false
  }

  /** Returns the response with its body wrapped: the slot is freed and the breaker told when the body is done. */
  #hold (res: UpstreamResponse, name: string, slot: LimiterSlot, permit: BreakerPermit, failedStatus: boolean): UpstreamResponse {
    return this.#bodies.track(res, name, (outcome, err) => {
      slot.release()
      settleBody(permit, outcome, err, name, failedStatus)
    })
  }

  /** Stops probes, refuses queued requests, cuts bodies still streaming, closes the connection pools. Idempotent. */
  close (): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  async #close (): Promise<void> {
    for (const o of this.#origins) {
      o.health.probe?.stop()
      o.limiter.close()
    }
    this.#bodies.destroyAll()
    await Promise.all(this.#origins.flatMap((o) => [o.upstream.close(), o.probeUpstream?.close()]))
  }
}

function exhausted (req: UpstreamRequest, failures: readonly string[], lastError: CdnError | undefined): CdnError {
  const why = failures.length === 0 ? 'every origin is marked down' : failures.join('; ')
  const message = `No origin could serve ${req.path} (${why})`
  const code = lastError?.code === 'CDN_ERR_UPSTREAM_TIMEOUT' ? 'CDN_ERR_UPSTREAM_TIMEOUT' : 'CDN_ERR_UPSTREAM_UNAVAILABLE'
  return new CdnError(code, message, lastError === undefined ? {} : { cause: lastError })
}

interface ResolvedSpec {
  readonly url: string
  readonly prefix: string
  readonly priority: number
  readonly weight: number
  readonly name: string
}

function checkOptions (o: OriginPoolOptions): ResolvedSpec[] {
  if (!Array.isArray(o.origins) || o.origins.length === 0) {
    throw new TypeError(`Expected options.origins to be a non-empty array, got ${String(o.origins)}`)
  }
  for (const [field, min] of [['maxConcurrent', 1], ['maxQueue', 0], ['queueTimeoutMs', 1], ['retries', 0]] as const) {
    const value = o[field]
    if (!Number.isSafeInteger(value) || value < min) throw new TypeError(`Expected options.${field} to be an integer of at least ${min}, got ${String(value)}`)
  }
  if (o.retryAfterSeconds !== undefined && (!Number.isSafeInteger(o.retryAfterSeconds) || o.retryAfterSeconds < 0)) {
    throw new TypeError(`Expected options.retryAfterSeconds to be a non-negative integer, got ${String(o.retryAfterSeconds)}`)
  }
  for (const field of ['connectTimeoutMs', 'firstByteTimeoutMs', 'idleTimeoutMs', 'keepAliveTimeoutMs'] as const) {
    const value = o.timeouts?.[field]
    if (!Number.isSafeInteger(value) || (value as number) < 1) throw new TypeError(`Expected options.timeouts.${field} to be a positive integer, got ${String(value)}`)
  }
  checkBreakerSettings(o.breaker, 'options.breaker')
  if (o.probe !== undefined) checkProbeSettings(o.probe, 'options.probe')
  const names = new Map<string, string>()
  return o.origins.map((spec, i) => {
    const where = `options.origins[${i}]`
    let url: URL
    try {
      url = new URL(spec.url)
    } catch {
      throw new TypeError(`Expected ${where}.url to be an http(s) URL, got ${JSON.stringify(spec.url)}`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`Expected ${where}.url to be an http(s) URL, got ${JSON.stringify(spec.url)}`)
    const prefix = spec.prefix ?? '/'
    if (typeof prefix !== 'string' || !prefix.startsWith('/')) throw new TypeError(`Expected ${where}.prefix to start with "/", got ${JSON.stringify(prefix)}`)
    const priority = spec.priority ?? 0
    if (!Number.isSafeInteger(priority) || priority < 0) throw new TypeError(`Expected ${where}.priority to be a non-negative integer, got ${String(priority)}`)
    const weight = spec.weight ?? 1
    if (!Number.isSafeInteger(weight) || weight < 1) throw new TypeError(`Expected ${where}.weight to be a positive integer, got ${String(weight)}`)
    const name = spec.name ?? url.host
    if (typeof name !== 'string' || name === '') throw new TypeError(`Expected ${where}.name to be a non-empty string, got ${JSON.stringify(name)}`)
    const href = url.href
    const owner = names.get(name)
    if (owner !== undefined && owner !== href) throw new TypeError(`Expected ${where}.name to be unique, got ${JSON.stringify(name)} for ${owner} and ${href}`)
    names.set(name, href)
    return { url: href, prefix, priority, weight, name }
  })
}
