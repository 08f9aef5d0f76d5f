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
 * Reloads: {@link OriginPool.replaceOrigins} swaps the table while requests run; origins that
 * stay keep their cap, queue, breaker and connections, and removed ones drain (nginx reload).
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
  /** Left out of the table by a reload: no new attempts; closed once its last request is done. */
  retired: boolean
}

/** What {@link OriginPool.replaceOrigins} changed, by origin name. */
export interface OriginTableChange {
  readonly added: readonly string[]
  readonly removed: readonly string[]
  readonly kept: readonly string[]
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
  #routes: readonly Route[]
  #origins: readonly Origin[]
  /** Retired by a reload and still serving requests that started on them. */
  readonly #retiring = new Set<Origin>()
  readonly #options: OriginPoolOptions
  readonly #create: NonNullable<OriginPoolOptions['createUpstream']>
  readonly #retries: number
  readonly #random: () => number
  readonly #logger: Logger | undefined
  /** Bodies still streaming from origins; close() cuts them so it never waits on a body nobody reads. */
  readonly #bodies = new TrackedBodies()
  #closed: Promise<void> | undefined

  constructor (options: OriginPoolOptions) {
    const specs = checkOptions(options)
    this.#options = options
    this.#create = options.createUpstream ?? ((o) => new HttpUpstream(o))
    this.#retries = options.retries
    this.#random = options.random ?? Math.random
    this.#logger = options.logger
    const table = this.#table(specs, new Map())
    this.#origins = table.origins
    this.#routes = table.routes
  }

  /**
   * Swaps in a new origin table (a reload of the origins file). Origins that stay (same URL and
   * name) keep their cap, queue, breaker and connections; new ones start fresh; removed ones
   * take no new attempts and are closed once their last request is done, so requests in flight
   * finish on the origin they started on. Throws TypeError, changing nothing, for a bad table.
   */
  replaceOrigins (origins: readonly OriginSpec[]): OriginTableChange {
    if (this.#closed !== undefined) throw new TypeError('Expected an open OriginPool, got one that is closed')
    const specs = checkOrigins(origins, 'origins')
    const current = new Map(this.#origins.map((o) => [o.url, o]))
    const table = this.#table(specs, current)
    const next = new Set(table.origins)
    const removed = this.#origins.filter((o) => !next.has(o))
    const kept = new Set(this.#origins.filter((o) => next.has(o)))
    this.#origins = table.origins
    this.#routes = table.routes
    for (const origin of removed) this.#retire(origin)
    return {
      added: table.origins.filter((o) => !kept.has(o)).map((o) => o.name),
      removed: removed.map((o) => o.name),
      kept: [...kept].map((o) => o.name),
    }
  }

  /** Routes for `specs`, reusing the origins of `current` (by URL, when the name is the same too). */
  #table (specs: readonly ResolvedSpec[], current: ReadonlyMap<string, Origin>): { origins: Origin[], routes: Route[] } {
    const byUrl = new Map<string, Origin>()
    const routes = new Map<string, Map<number, Candidate[]>>()
    for (const spec of specs) {
      let origin = byUrl.get(spec.url)
      if (origin === undefined) {
        const old = current.get(spec.url)
        origin = old !== undefined && old.name === spec.name ? old : this.#buildOrigin(spec)
        byUrl.set(spec.url, origin)
      }
      let groups = routes.get(spec.prefix)
      if (groups === undefined) routes.set(spec.prefix, groups = new Map())
      let group = groups.get(spec.priority)
      if (group === undefined) groups.set(spec.priority, group = [])
      group.push({ origin, weight: spec.weight })
    }
    return {
      origins: [...byUrl.values()],
      routes: [...routes.entries()]
        .map(([prefix, groups]) => ({ prefix, groups: [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([, g]) => g) }))
        .sort((a, b) => b.prefix.length - a.prefix.length),
    }
  }

  #buildOrigin (spec: ResolvedSpec): Origin {
    const options = this.#options
    const create = this.#create
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
    return { name: spec.name, url: spec.url, upstream, probeUpstream, limiter, health, retired: false }
  }

  /** Takes `origin` out of service: its probe stops now, its connections once it is idle. */
  #retire (origin: Origin): void {
    origin.retired = true
    origin.health.probe?.stop()
    this.#retiring.add(origin)
    this.#closeIfIdle(origin)
  }

  /** Closes a retired origin with no request in flight or waiting. */
  #closeIfIdle (origin: Origin): void {
    if (!this.#retiring.has(origin)) return
    const { active, queued } = origin.limiter.stats
    if (active > 0 || queued > 0) return
    this.#retiring.delete(origin)
    closeConnections(origin).catch((err: unknown) => {
      this.#logger?.warn({ err, upstream: origin.name }, 'closing a retired origin failed')
    })
  }

  /** Gives back a slot of `origin` (closing it if it was retired and this was its last request). */
  #free (origin: Origin, slot: LimiterSlot): void {
    slot.release()
    this.#closeIfIdle(origin)
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
          this.#closeIfIdle(origin)
          // Overload ends the request here (no spill to backups); an earlier origin's 5xx still beats a 503.
          if (kept !== undefined && !isCdnError(err, 'CDN_ERR_CLIENT_ABORTED')) return kept
          discardKept(kept)
          throw err
        }
        const permit = origin.health.breaker.acquire()
        if (permit === undefined) { // opened while we queued
          this.#free(origin, slot)
          failures.push(`${origin.name}: marked down`)
          continue
        }
        attempts++
        let res: UpstreamResponse
        try {
          res = await origin.upstream.request(req)
        } catch (err) {
          this.#free(origin, slot)
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
          return this.#hold(res, origin, slot, permit, failed)
        }
        permit.failure()
        failures.push(`${origin.name}: ${res.status}`)
        this.#logger?.warn({ upstream: origin.name, status: res.status, path: req.path, attempt: attempts }, 'origin answered 5xx; trying another')
        discardKept(kept)
        // Kept as the answer should nothing better come; the wrapper reads its (small) body
        // and frees the slot as soon as the origin has sent it, whether or not anyone reads it.
        kept = this.#hold(res, origin, slot, permit, true)
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
   * Picks an untried, unretired origin of `group` whose breaker lets a request through: among those
   * with a free slot if any, else among those with queue room, else any (it will refuse
   * with 503), weighted by `weight`.
   */
  #choose (group: readonly Candidate[], tried: ReadonlySet<Origin>): Origin | undefined {
    let free = 0
    let queueable = 0
    let open = 0
    for (const c of group) {
      if (!usable(c.origin, tried)) continue
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
      if (!usable(c.origin, tried)) continue
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
      for (const c of group) if (usable(c.origin, tried)) return true
    }
    return false
  }

  /** Returns the response with its body wrapped: the slot is freed and the breaker told when the body is done. */
  #hold (res: UpstreamResponse, origin: Origin, slot: LimiterSlot, permit: BreakerPermit, failedStatus: boolean): UpstreamResponse {
    return this.#bodies.track(res, origin.name, (outcome, err) => {
      this.#free(origin, slot)
      settleBody(permit, outcome, err, origin.name, failedStatus)
    })
  }

  /** Stops probes, refuses queued requests, cuts bodies still streaming, closes the connection pools. Idempotent. */
  close (): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  async #close (): Promise<void> {
    const origins = [...this.#origins, ...this.#retiring]
    this.#retiring.clear()
    for (const o of origins) {
      o.health.probe?.stop()
      o.limiter.close()
    }
    this.#bodies.destroyAll()
    await Promise.all(origins.map(closeConnections))
  }
}

/** Whether a new attempt may go to `origin`. */
function usable (origin: Origin, tried: ReadonlySet<Origin>): boolean {
  return !origin.retired && !tried.has(origin) && origin.health.breaker.available()
}

async function closeConnections (origin: Origin): Promise<void> {
  await Promise.all([origin.upstream.close(), origin.probeUpstream?.close()])
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
  return checkOrigins(o.origins, 'options.origins')
}

/** Validates an origin table; TypeErrors name the entry as `<field>[i]`. */
function checkOrigins (origins: readonly OriginSpec[], field: string): ResolvedSpec[] {
  if (!Array.isArray(origins) || origins.length === 0) {
    throw new TypeError(`Expected ${field} to be a non-empty array, got ${String(origins)}`)
  }
  const names = new Map<string, string>()
  return origins.map((spec, i) => {
    const where = `${field}[${i}]`
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
