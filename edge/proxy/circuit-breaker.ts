/**
 * Upstream health: a circuit breaker fed by real traffic (passive health) and an optional
 * active probe.
 *
 * Breaker: closed → open after N consecutive failures or an error rate over a sliding window
 * (nginx `max_fails`/`fail_timeout`, ATS `fail_threshold`); open for a cool-down, then
 * half-open: a bounded number of trial requests go through, one success closes it, one
 * failure re-opens it (ATS `retry_time`, pingora's health checks). Outcomes are reported on
 * a permit taken per request, so a request that started before the circuit changed state
 * cannot close or re-open it afterwards.
 *
 * Probe: `GET <path>` every interval; N failures in a row mark the upstream down (the breaker
 * is held open), M successes in a row mark it up again (closed): Varnish probes'
 * `.threshold/.window`, the control plane's hysteresis.
 */
import type { Upstream } from './upstream.ts'

/** Closed: requests flow. Open: refused until the cool-down ends. Half-open: trial requests decide. */
export type BreakerState = 'closed' | 'open' | 'half-open'

/** The tunables of a breaker, as they come from config. */
export interface BreakerSettings {
  /** Consecutive failures that open the circuit; 0 turns this rule off. */
  readonly failureThreshold: number
  /** Failure percentage over the window that opens the circuit (1-100); 0 turns this rule off. */
  readonly errorRatePercent: number
  /** Outcomes the window must hold before the error rate counts. */
  readonly minRequests: number
  /** Length of the sliding window for the error rate. */
  readonly windowMs: number
  /** How long the circuit stays open before a trial request is let through. */
  readonly coolDownMs: number
  /** Trial requests at once while half-open (default 1). */
  readonly halfOpenTrials?: number
}

/** One state change, for logs and metrics. */
export interface BreakerStateChange {
  readonly from: BreakerState
  readonly to: BreakerState
  readonly reason: string
}

/** Options of {@link CircuitBreaker}: the settings plus a clock and a change listener. */
export interface CircuitBreakerOptions extends BreakerSettings {
  /** Monotonic clock in ms (injectable for tests; default performance.now). */
  readonly now?: () => number
  readonly onStateChange?: (change: BreakerStateChange) => void
}

/** Sliding window granularity: the window is this many buckets. */
const BUCKETS = 10

/** Passive health of one upstream. */
export class CircuitBreaker {
  readonly #failureThreshold: number
  readonly #errorRatePercent: number
  readonly #minRequests: number
  readonly #bucketMs: number
  readonly #coolDownMs: number
  readonly #halfOpenTrials: number
  readonly #now: () => number
  readonly #onStateChange: ((change: BreakerStateChange) => void) | undefined
  readonly #okCounts = new Uint32Array(BUCKETS)
  readonly #failCounts = new Uint32Array(BUCKETS)
  readonly #bucketEpochs = new Float64Array(BUCKETS).fill(-1)
  #state: BreakerState = 'closed'
  /** Bumped on every state change; permits from an older generation are ignored. */
  #generation = 0
  #consecutiveFailures = 0
  #openedAtMs = 0
  #trialsInFlight = 0
  /** Held open by an active probe until it says the upstream is up again. */
  #forcedDown = false

  constructor (options: CircuitBreakerOptions) {
    checkBreakerSettings(options, 'options')
    this.#failureThreshold = options.failureThreshold
    this.#errorRatePercent = options.errorRatePercent
    this.#minRequests = options.minRequests
    this.#bucketMs = Math.max(1, options.windowMs / BUCKETS)
    this.#coolDownMs = options.coolDownMs
    this.#halfOpenTrials = options.halfOpenTrials ?? 1
    this.#now = options.now ?? (() => performance.now())
    this.#onStateChange = options.onStateChange
  }

  /** Current state; an open circuit whose cool-down has passed reads as half-open. */
  get state (): BreakerState {
    this.#maybeHalfOpen()
    return this.#state
  }

  /** True while an active probe holds the circuit open. */
  get forcedDown (): boolean {
    return this.#forcedDown
  }

  /** Would {@link acquire} let a request through now? Takes nothing. */
  available (): boolean {
    this.#maybeHalfOpen()
    if (this.#state === 'closed') return true
    return this.#state === 'half-open' && this.#trialsInFlight < this.#halfOpenTrials
  }

  /** A permit for one request, or undefined when the circuit refuses it. Report its outcome exactly once. */
  acquire (): BreakerPermit | undefined {
    this.#maybeHalfOpen()
    if (this.#state === 'closed') return new BreakerPermit(this, this.#generation, false)
    if (this.#state === 'half-open' && this.#trialsInFlight < this.#halfOpenTrials) {
      this.#trialsInFlight++
      return new BreakerPermit(this, this.#generation, true)
    }
    return undefined
  }

  /** An active probe saw the upstream fail: hold the circuit open until {@link markUp}. */
  markDown (reason: string): void {
    this.#forcedDown = true
    if (this.#state !== 'open') this.#transition('open', reason)
    else this.#openedAtMs = this.#now()
  }

  /** An active probe saw the upstream recover: close the circuit it held open. */
  markUp (reason: string): void {
    if (!this.#forcedDown) return
    this.#forcedDown = false
    this.#transition('closed', reason)
  }

  /** @internal Outcome of a permit (called by BreakerPermit). */
  settle (generation: number, trial: boolean, outcome: 'success' | 'failure' | 'release'): void {
    if (generation !== this.#generation) return
    if (trial) this.#trialsInFlight--
    if (outcome === 'release') return
    if (this.#state === 'half-open') {
      if (outcome === 'success') this.#transition('closed', 'trial request succeeded')
      else this.#transition('open', 'trial request failed')
      return
    }
    if (this.#state !== 'closed') return
    this.#record(outcome === 'success')
    if (outcome === 'success') {
      this.#consecutiveFailures = 0
      return
    }
    this.#consecutiveFailures++
    if (this.#failureThreshold > 0 && this.#consecutiveFailures >= this.#failureThreshold) {
      this.#transition('open', `${this.#consecutiveFailures} consecutive failures`)
      return
    }
    if (this.#errorRatePercent > 0) {
      const { ok, failed } = this.#windowCounts()
      const total = ok + failed
      if (total >= this.#minRequests && failed * 100 >= this.#errorRatePercent * total) {
        this.#transition('open', `${failed} of ${total} requests failed in the window`)
      }
    }
  }

  #maybeHalfOpen (): void {
    if (this.#state !== 'open' || this.#forcedDown) return
    if (this.#now() - this.#openedAtMs >= this.#coolDownMs) this.#transition('half-open', 'cool-down over')
  }

  #transition (to: BreakerState, reason: string): void {
    const from = this.#state
    this.#state = to
    this.#generation++
    this.#trialsInFlight = 0
    this.#consecutiveFailures = 0
    if (to === 'open') this.#openedAtMs = this.#now()
    if (to === 'closed') this.#clearWindow()
    if (from !== to) this.#onStateChange?.({ from, to, reason })
  }

  #record (ok: boolean): void {
    const epoch = Math.floor(this.#now() / this.#bucketMs)
    const i = epoch % BUCKETS
    if (this.#bucketEpochs[i] !== epoch) {
      this.#bucketEpochs[i] = epoch
      this.#okCounts[i] = 0
      this.#failCounts[i] = 0
    }
    if (ok) this.#okCounts[i]!++
    else this.#failCounts[i]!++
  }

  #windowCounts (): { ok: number, failed: number } {
    const current = Math.floor(this.#now() / this.#bucketMs)
    let ok = 0
    let failed = 0
    for (let i = 0; i < BUCKETS; i++) {
      if (current - this.#bucketEpochs[i]! >= BUCKETS) continue
      ok += this.#okCounts[i]!
      failed += this.#failCounts[i]!
    }
    return { ok, failed }
  }

  #clearWindow (): void {
    // The counts too: an epoch of -1 still reads as inside the window while the clock is
    // under one window (the first seconds of a process), so stale counts would come back.
    this.#bucketEpochs.fill(-1)
    this.#okCounts.fill(0)
    this.#failCounts.fill(0)
  }
}

/** The right to send one request through a breaker; the first reported outcome counts, later ones are ignored. */
export class BreakerPermit {
  readonly #breaker: CircuitBreaker
  readonly #generation: number
  readonly #trial: boolean
  #settled = false

  constructor (breaker: CircuitBreaker, generation: number, trial: boolean) {
    this.#breaker = breaker
    this.#generation = generation
    this.#trial = trial
  }

  /** True when this request is a half-open trial. */
  get trial (): boolean {
    return this.#trial
  }

  /** The upstream did its job. */
  success (): void {
    this.#settle('success')
  }

  /** The upstream failed (connect error, timeout, 5xx, broken body). */
  failure (): void {
    this.#settle('failure')
  }

  /** No verdict (the client left, the request was cancelled): frees a trial slot, counts nothing. */
  release (): void {
    this.#settle('release')
  }

  #settle (outcome: 'success' | 'failure' | 'release'): void {
    if (this.#settled) return
    this.#settled = true
    this.#breaker.settle(this.#generation, this.#trial, outcome)
  }
}

/** The tunables of an active probe, as they come from config. */
export interface ProbeSettings {
  /** Time between the end of one probe and the start of the next. */
  readonly intervalMs: number
  /** A probe without an answer after this long failed. */
  readonly timeoutMs: number
  /** Path probed with GET; a 2xx or 3xx answer is a success. */
  readonly path: string
  /** Consecutive failed probes that mark the upstream down. */
  readonly failuresToDown: number
  /** Consecutive good probes that mark a down upstream up again. */
  readonly successesToUp: number
}

/** Options of {@link HealthProbe}. */
export interface HealthProbeOptions {
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly failuresToDown: number
  readonly successesToUp: number
  /** One probe: true when healthy; false, a rejection or the signal firing (timeout) is a failure. */
  readonly check: (signal: AbortSignal) => Promise<boolean>
  /** Called when the verdict flips. */
  readonly onChange?: (healthy: boolean, detail: string) => void
}

const STOPPED = new Error('probe stopped')

/** Active health checks with hysteresis. Starts optimistic (healthy) so traffic flows at boot. */
export class HealthProbe {
  readonly #o: HealthProbeOptions
  #healthy = true
  #failures = 0
  #successes = 0
  #timer: NodeJS.Timeout | undefined
  #running = false
  #inFlight: AbortController | undefined

  constructor (options: HealthProbeOptions) {
    for (const field of ['intervalMs', 'timeoutMs', 'failuresToDown', 'successesToUp'] as const) {
      const value = options[field]
      if (!Number.isSafeInteger(value) || value < 1) {
        throw new TypeError(`Expected options.${field} to be a positive integer, got ${String(value)}`)
      }
    }
    if (typeof options.check !== 'function') throw new TypeError(`Expected options.check to be a function, got ${String(options.check)}`)
    this.#o = options
  }

  get healthy (): boolean {
    return this.#healthy
  }

  /** Probes now, then every interval after each probe ends, until {@link stop}. */
  start (): void {
    if (this.#running) return
    this.#running = true
    this.#schedule(0)
  }

  stop (): void {
    this.#running = false
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#inFlight?.abort(STOPPED)
  }

  /** Runs one probe and applies its result; resolves with whether it succeeded. */
  async probeOnce (): Promise<boolean> {
    const controller = new AbortController()
    this.#inFlight = controller
    const timer = setTimeout(() => controller.abort(new Error(`probe timed out after ${this.#o.timeoutMs} ms`)), this.#o.timeoutMs)
    let ok: boolean
    let detail: string
    try {
      ok = await Promise.race([this.#o.check(controller.signal), aborted(controller.signal)]) === true
      detail = ok ? 'probe succeeded' : 'probe answered unhealthy'
    } catch (err) {
      ok = false
      detail = `probe failed: ${err instanceof Error ? err.message : String(err)}`
    } finally {
      clearTimeout(timer)
      if (this.#inFlight === controller) this.#inFlight = undefined
    }
    if (controller.signal.reason === STOPPED) return ok // stopped mid-probe: not a verdict
    this.#apply(ok, detail)
    return ok
  }

  #apply (ok: boolean, detail: string): void {
    if (ok) {
      this.#failures = 0
      this.#successes++
      if (!this.#healthy && this.#successes >= this.#o.successesToUp) {
        this.#healthy = true
        this.#o.onChange?.(true, `${this.#successes} probes in a row succeeded`)
      }
      return
    }
    this.#successes = 0
    this.#failures++
    if (this.#healthy && this.#failures >= this.#o.failuresToDown) {
      this.#healthy = false
      this.#o.onChange?.(false, `${this.#failures} probes in a row failed (last: ${detail})`)
    }
  }

  #schedule (delayMs: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      void this.probeOnce().finally(() => {
        if (this.#running) this.#schedule(this.#o.intervalMs)
      })
    }, delayMs)
    this.#timer.unref()
  }
}

function aborted (signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason)
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true })
  })
}

/** A probe check that GETs `path` through `upstream`: healthy on 2xx/3xx. The body is drained so the connection is reused. */
export function upstreamProbeCheck (upstream: Upstream, path: string): (signal: AbortSignal) => Promise<boolean> {
  return async (signal) => {
    const res = await upstream.request({ method: 'GET', path, headers: { 'user-agent': 'streamedge-probe' }, signal })
    res.body.on('error', () => {})
    res.body.resume()
    return res.status >= 200 && res.status < 400
  }
}

/** A breaker plus, when probe settings are given, a running probe that drives it. */
export interface UpstreamHealth {
  readonly breaker: CircuitBreaker
  readonly probe: HealthProbe | undefined
}

/** Options of {@link watchUpstream}. */
export interface WatchUpstreamOptions {
  readonly breaker: BreakerSettings
  readonly probe?: ProbeSettings | undefined
  /**
   * Where probes go (default: the watched upstream). Give a separate small pool: a probe
   * queued behind a saturated traffic pool times out and marks a busy upstream down.
   */
  readonly probeUpstream?: Upstream | undefined
  readonly now?: (() => number) | undefined
  /** State changes of the breaker (passive or probe-driven), for logs. */
  readonly onStateChange?: ((change: BreakerStateChange) => void) | undefined
}

/** Builds the health of one upstream and starts its probe, if any. Stop the probe on close. */
export function watchUpstream (upstream: Upstream, options: WatchUpstreamOptions): UpstreamHealth {
  const breaker = new CircuitBreaker({
    ...options.breaker,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.onStateChange === undefined ? {} : { onStateChange: options.onStateChange }),
  })
  const settings = options.probe
  if (settings === undefined) return { breaker, probe: undefined }
  checkProbeSettings(settings, 'probe')
  const probe = new HealthProbe({
    intervalMs: settings.intervalMs,
    timeoutMs: settings.timeoutMs,
    failuresToDown: settings.failuresToDown,
    successesToUp: settings.successesToUp,
    check: upstreamProbeCheck(options.probeUpstream ?? upstream, settings.path),
    onChange: (healthy, detail) => {
      if (healthy) breaker.markUp(`probe: ${detail}`)
      else breaker.markDown(`probe: ${detail}`)
    },
  })
  probe.start()
  return { breaker, probe }
}

/** Throws TypeError naming the first bad field of breaker settings under `name`. */
export function checkBreakerSettings (s: BreakerSettings, name: string): void {
  const ints: Array<[keyof BreakerSettings, number]> = [
    ['failureThreshold', 0], ['errorRatePercent', 0], ['minRequests', 0], ['windowMs', 1], ['coolDownMs', 0],
  ]
  for (const [field, min] of ints) {
    const value = s[field]
    if (!Number.isSafeInteger(value) || (value as number) < min) {
      throw new TypeError(`Expected ${name}.${field} to be an integer of at least ${min}, got ${String(value)}`)
    }
  }
  if (s.errorRatePercent > 100) throw new TypeError(`Expected ${name}.errorRatePercent to be at most 100, got ${s.errorRatePercent}`)
  if (s.halfOpenTrials !== undefined && (!Number.isSafeInteger(s.halfOpenTrials) || s.halfOpenTrials < 1)) {
    throw new TypeError(`Expected ${name}.halfOpenTrials to be a positive integer, got ${String(s.halfOpenTrials)}`)
  }
}

/** Throws TypeError naming the first bad field of probe settings under `name`. */
export function checkProbeSettings (s: ProbeSettings, name: string): void {
  for (const field of ['intervalMs', 'timeoutMs', 'failuresToDown', 'successesToUp'] as const) {
    const value = s[field]
    if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`Expected ${name}.${field} to be a positive integer, got ${String(value)}`)
  }
  if (typeof s.path !== 'string' || !s.path.startsWith('/')) {
    throw new TypeError(`Expected ${name}.path to be a path starting with "/", got ${JSON.stringify(s.path)}`)
  }
}
