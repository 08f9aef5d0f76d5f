/**
 * Pre-positioning (Open Connect style fill): a job takes titles, reads each master
 * playlist, picks renditions, reads their media playlists, then warms every segment and
 * init section through the pipeline, within a byte-rate cap, a concurrency cap and an
 * optional daily UTC window. Resumable by construction: a segment already cached costs a
 * lookup, not a fetch, so re-running a job (after a restart or a cancel) picks up where
 * it stopped. A live title is filled once, with the window its playlist lists now.
 *
 * Jobs run one after another (each job has its own caps); finished ones are kept for
 * status queries up to `maxJobs`.
 */
import type { Logger } from '../../lib/log.ts'
import type { HlsMetrics } from '../../lib/metrics.ts'
import { parseDailyWindow, type DailyWindow, type PrefillJobStatus, type PrefillRequest, type PrefillState } from '../../lib/protocol/prefill.ts'
import { ByteRateLimiter, sleep as timerSleep } from './byte-rate-limiter.ts'
import type { PlaylistInfo, VariantRef } from './playlist.ts'
import type { Warm } from './warm.ts'

/** Node-wide defaults of {@link Prefiller}. */
export interface PrefillSettings {
  /** Byte-rate cap for jobs that give none (0: no cap). */
  readonly defaultBytesPerSecond: number
  /** Segments fetched at once by jobs that give no concurrency. */
  readonly defaultConcurrency: number
  /** Jobs remembered (finished ones are forgotten first). */
  readonly maxJobs: number
}

/** Defaults of {@link PrefillSettings}. */
export const PREFILL_DEFAULTS: PrefillSettings = Object.freeze({
  defaultBytesPerSecond: 0,
  defaultConcurrency: 4,
  maxJobs: 64,
})

/** Options of {@link Prefiller}. */
export interface PrefillerOptions extends PrefillSettings {
  readonly warm: Warm
  /** The playlist at `url` (warmed just before), summarised with URIs in cache-key form. */
  readonly readPlaylist: (url: string) => Promise<PlaylistInfo | undefined>
  readonly metrics: HlsMetrics
  readonly logger: Logger
  /** Monotonic ms for the rate cap (default performance.now). */
  readonly clock?: () => number
  /** Wall clock (epoch ms) for windows and timestamps (default Date.now). */
  readonly now?: () => number
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
}

/** Errors kept per job (the rest are counted only). */
const MAX_ERRORS = 20
/** Longest sleep while waiting for a window to open, so a cancel or a clock jump is noticed. */
const WINDOW_POLL_MS = 60_000
const DAY_MINUTES = 24 * 60

interface WorkItem {
  readonly url: string
  /** The media playlist listing it: segments of one rendition are about the same size. */
  readonly rendition: string
  /** Expected bytes (BANDWIDTH × duration / 8), when the master said. */
  readonly estimate: number | undefined
}

/** One job's mutable state. */
class Job {
  readonly id: string
  readonly request: PrefillRequest
  readonly window: DailyWindow | undefined
  readonly limiter: ByteRateLimiter
  readonly concurrency: number
  readonly abort = new AbortController()
  readonly createdAtMs: number
  state: PrefillState = 'waiting'
  updatedAtMs: number
  finishedAtMs: number | undefined
  playlists = 0
  segmentsTotal = 0
  filled = 0
  cached = 0
  failed = 0
  bytes = 0
  readonly errors: string[] = []

  constructor (id: string, request: PrefillRequest, limiter: ByteRateLimiter, concurrency: number, nowMs: number) {
    this.id = id
    this.request = request
    this.window = request.window === undefined ? undefined : parseDailyWindow(request.window)
    this.limiter = limiter
    this.concurrency = concurrency
    this.createdAtMs = nowMs
    this.updatedAtMs = nowMs
  }

  get done (): number { return this.filled + this.cached + this.failed }

  note (error: string): void {
    if (this.errors.length < MAX_ERRORS) this.errors.push(error)
  }

  status (): PrefillJobStatus {
    return {
      id: this.id,
      state: this.state,
      titles: this.request.titles,
      createdAtMs: this.createdAtMs,
      updatedAtMs: this.updatedAtMs,
      ...(this.finishedAtMs === undefined ? {} : { finishedAtMs: this.finishedAtMs }),
      playlists: this.playlists,
      segmentsTotal: this.segmentsTotal,
      segmentsDone: this.done,
      segmentsFilled: this.filled,
      segmentsCached: this.cached,
      segmentsFailed: this.failed,
      bytes: this.bytes,
      bytesPerSecond: this.limiter.bytesPerSecond,
      errors: [...this.errors],
    }
  }
}

/** Runs prefill jobs; see the file comment. */
export class Prefiller {
  readonly #o: PrefillerOptions
  readonly #clock: () => number
  readonly #now: () => number
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>
  readonly #jobs = new Map<string, Job>()
  #chain: Promise<void> = Promise.resolve()
  #counter = 0
  #closed = false

  constructor (options: PrefillerOptions) {
    if (!Number.isSafeInteger(options.defaultBytesPerSecond) || options.defaultBytesPerSecond < 0) {
      throw new TypeError(`Expected options.defaultBytesPerSecond to be a non-negative integer, got ${String(options.defaultBytesPerSecond)}`)
    }
    for (const field of ['defaultConcurrency', 'maxJobs'] as const) {
      const value = options[field]
      if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`Expected options.${field} to be a positive integer, got ${String(value)}`)
    }
    this.#o = options
    this.#clock = options.clock ?? performance.now.bind(performance)
    this.#now = options.now ?? Date.now
    this.#sleep = options.sleep ?? timerSleep
  }

  /** Queues a job for an already validated request (lib/protocol/prefill.ts parsePrefillRequest). */
  start (request: PrefillRequest): PrefillJobStatus {
    if (this.#closed) throw new Error('Prefiller is closed')
    const limiter = new ByteRateLimiter({ bytesPerSecond: request.bytesPerSecond ?? this.#o.defaultBytesPerSecond, now: this.#clock, sleep: this.#sleep })
    const id = `pf-${this.#now().toString(36)}-${++this.#counter}`
    const job = new Job(id, request, limiter, request.concurrency ?? this.#o.defaultConcurrency, this.#now())
    this.#jobs.set(id, job)
    this.#trim()
    this.#o.logger.info({ prefillJob: id, titles: request.titles.length, bytesPerSecond: limiter.bytesPerSecond, window: request.window }, 'prefill job queued')
    this.#chain = this.#chain.then(() => this.#run(job))
    return job.status()
  }

  /** A job's status, if it is remembered. */
  get (id: string): PrefillJobStatus | undefined {
    return this.#jobs.get(id)?.status()
  }

  /** Every remembered job, oldest first. */
  list (): PrefillJobStatus[] {
    return [...this.#jobs.values()].map((job) => job.status())
  }

  /** Cancels a waiting or running job; its status, or undefined for an unknown id. */
  cancel (id: string): PrefillJobStatus | undefined {
    const job = this.#jobs.get(id)
    if (job === undefined) return undefined
    if (job.state === 'waiting' || job.state === 'running') {
      job.abort.abort()
      this.#finish(job, 'cancelled')
    }
    return job.status()
  }

  /** Jobs by state and segments still to do (metrics). */
  gauges (): { readonly jobs: Record<PrefillState, number>, readonly remaining: number } {
    const jobs: Record<PrefillState, number> = { waiting: 0, running: 0, done: 0, failed: 0, cancelled: 0 }
    let remaining = 0
    for (const job of this.#jobs.values()) {
      jobs[job.state]++
      if (job.state === 'waiting' || job.state === 'running') remaining += job.segmentsTotal - job.done
    }
    return { jobs, remaining }
  }

  /** Cancels every job and waits for them to stop. */
  async close (): Promise<void> {
    this.#closed = true
    for (const job of this.#jobs.values()) {
      if (job.state === 'waiting' || job.state === 'running') {
        job.abort.abort()
        this.#finish(job, 'cancelled')
      }
    }
    await this.#chain
  }

  async #run (job: Job): Promise<void> {
    if (job.abort.signal.aborted) return
    const { logger } = this.#o
    const startedMs = this.#clock()
    try {
      await this.#waitForWindow(job)
      const work = await this.#collect(job)
      job.segmentsTotal = work.length
      this.#touch(job)
      await this.#fillAll(job, work)
      // Failed only when nothing at all could be filled: partial success is progress a re-run resumes.
      const state: PrefillState = (job.failed > 0 || job.errors.length > 0) && job.filled + job.cached === 0 ? 'failed' : 'done'
      this.#finish(job, state)
      const seconds = (this.#clock() - startedMs) / 1000
      logger.info({ prefillJob: job.id, ...job.status(), errors: job.errors.length, seconds }, 'prefill job finished')
    } catch (err) {
      if (job.abort.signal.aborted) {
        logger.info({ prefillJob: job.id, segmentsDone: job.done, segmentsTotal: job.segmentsTotal }, 'prefill job cancelled')
        return
      }
      job.note(`job failed: ${(err as Error).message}`)
      this.#finish(job, 'failed')
      logger.error({ prefillJob: job.id, err }, 'prefill job failed')
    }
  }

  /** Master → renditions → media playlists → segment list (deduplicated, in playlist order). */
  async #collect (job: Job): Promise<WorkItem[]> {
    const work: WorkItem[] = []
    const seen = new Set<string>()
    for (const title of job.request.titles) {
      job.abort.signal.throwIfAborted()
      const url = title.endsWith('/') ? `${title}master.m3u8` : title
      const top = await this.#playlist(job, url)
      if (top === undefined) continue
      const renditions = top.kind === 'master' ? chooseRenditions(top.variants, job.request) : [{ url, bandwidth: undefined }]
      if (renditions.length === 0) job.note(`${title}: no variant stream matches the rendition choice`)
      for (const rendition of renditions) {
        const media = rendition.url === url && top.kind === 'media' ? top : await this.#playlist(job, rendition.url)
        if (media === undefined) continue
        if (media.kind !== 'media') {
          job.note(`${rendition.url}: expected a media playlist, got a multivariant playlist`)
          continue
        }
        job.playlists++
        for (const map of media.maps) add(map, `${rendition.url}#map`, undefined)
        for (const segment of media.segments) {
          add(segment.url, rendition.url, rendition.bandwidth === undefined ? undefined : Math.ceil(rendition.bandwidth * segment.durationSec / 8))
        }
      }
      job.segmentsTotal = work.length
      this.#touch(job)
    }
    return work

    function add (url: string, rendition: string, estimate: number | undefined): void {
      if (seen.has(url)) return
      seen.add(url)
      work.push({ url, rendition, estimate })
    }
  }

  async #playlist (job: Job, url: string): Promise<PlaylistInfo | undefined> {
    const outcome = await this.#o.warm(url, { signal: job.abort.signal })
    job.abort.signal.throwIfAborted()
    if (outcome.result === 'failed' || (outcome.status !== undefined && outcome.status !== 200)) {
      job.note(`${url}: ${outcome.status === undefined ? 'fetch failed' : `HTTP ${outcome.status}`}`)
      return undefined
    }
    const info = await this.#o.readPlaylist(url)
    if (info === undefined) job.note(`${url}: not a playlist (or not cacheable)`)
    return info
  }

  async #fillAll (job: Job, work: readonly WorkItem[]): Promise<void> {
    let next = 0
    // Sizes seen so far: per rendition (the best guess for its next segment), and overall.
    const seen = new Map<string, number>()
    let avgBytes: number | undefined
    const worker = async (): Promise<void> => {
      for (;;) {
        const item = work[next++]
        if (item === undefined) return
        await this.#waitForWindow(job)
        const estimate = Math.round(seen.get(item.rendition) ?? item.estimate ?? avgBytes ?? 0)
        await job.limiter.acquire(estimate, job.abort.signal)
        const outcome = await this.#o.warm(item.url, { signal: job.abort.signal })
        job.abort.signal.throwIfAborted()
        if (outcome.result === 'filled') {
          job.bytes += outcome.bytes
          this.#o.metrics.prefillBytes.inc({}, outcome.bytes)
          const previous = seen.get(item.rendition)
          seen.set(item.rendition, previous === undefined ? outcome.bytes : (previous * 3 + outcome.bytes) / 4)
          avgBytes = avgBytes === undefined ? outcome.bytes : (avgBytes * 7 + outcome.bytes) / 8
        }
        // Settle the reservation with what really moved (nothing for a cached or joined segment).
        const moved = outcome.result === 'filled' ? outcome.bytes : 0
        if (moved > estimate) job.limiter.take(moved - estimate)
        else job.limiter.refund(estimate - moved)
        this.#count(job, item.url, outcome.result, outcome.status)
      }
    }
    await Promise.all(Array.from({ length: Math.min(job.concurrency, work.length) }, worker))
  }

  #count (job: Job, url: string, result: string, status: number | undefined): void {
    if (result === 'filled' || result === 'joined') {
      job.filled++
      this.#o.metrics.prefillSegments.inc({ outcome: 'filled' })
    } else if (result === 'cached') {
      job.cached++
      this.#o.metrics.prefillSegments.inc({ outcome: 'cached' })
    } else {
      job.failed++
      job.note(`${url}: ${result}${status === undefined ? '' : ` (HTTP ${status})`}`)
      this.#o.metrics.prefillSegments.inc({ outcome: 'failed' })
    }
    this.#touch(job)
  }

  /** Sleeps while the wall clock is outside the job's daily window. */
  async #waitForWindow (job: Job): Promise<void> {
    const window = job.window
    if (window === undefined) {
      if (job.state === 'waiting') job.state = 'running'
      return
    }
    for (;;) {
      job.abort.signal.throwIfAborted()
      const waitMs = msUntilOpen(window, this.#now())
      if (waitMs === 0) break
      if (job.state !== 'waiting') {
        job.state = 'waiting'
        this.#touch(job)
      }
      await this.#sleep(Math.min(waitMs, WINDOW_POLL_MS), job.abort.signal)
    }
    if (job.state === 'waiting') {
      job.state = 'running'
      this.#touch(job)
    }
  }

  #finish (job: Job, state: PrefillState): void {
    if (job.finishedAtMs !== undefined) return
    job.state = state
    job.finishedAtMs = this.#now()
    this.#touch(job)
  }

  #touch (job: Job): void {
    job.updatedAtMs = this.#now()
  }

  /** Forgets the oldest finished jobs beyond maxJobs. */
  #trim (): void {
    for (const [id, job] of this.#jobs) {
      if (this.#jobs.size <= this.#o.maxJobs) return
      if (job.finishedAtMs !== undefined) this.#jobs.delete(id)
    }
  }
}

/** The variant streams (and their EXT-X-MEDIA renditions) a request asks for. */
export function chooseRenditions (variants: readonly VariantRef[], request: Pick<PrefillRequest, 'renditions' | 'maxBandwidth'>): Array<{ url: string, bandwidth: number | undefined }> {
  const choice = request.renditions ?? 'all'
  let candidates = variants.filter((v) => choice === 'all' || !v.iframe)
  if (request.maxBandwidth !== undefined) candidates = candidates.filter((v) => v.bandwidth <= request.maxBandwidth!)
  if (choice !== 'all' && candidates.length > 0) {
    const pick = candidates.reduce((a, b) => (choice === 'highest' ? b.bandwidth > a.bandwidth : b.bandwidth < a.bandwidth) ? b : a)
    candidates = [pick]
  }
  const out = new Map<string, number | undefined>()
  for (const v of candidates) {
    if (!out.has(v.url)) out.set(v.url, v.bandwidth > 0 ? v.bandwidth : undefined)
    // An audio or subtitle rendition's size is not in the master; the running average estimates it.
    for (const media of v.media) if (!out.has(media)) out.set(media, undefined)
  }
  return [...out].map(([url, bandwidth]) => ({ url, bandwidth }))
}

/** Milliseconds until a daily UTC window opens (0 when inside it). */
export function msUntilOpen (window: DailyWindow, nowMs: number): number {
  const dayMs = DAY_MINUTES * 60_000
  const msOfDay = ((nowMs % dayMs) + dayMs) % dayMs
  const start = window.startMinute * 60_000
  const end = window.endMinute * 60_000
  const inside = start < end ? msOfDay >= start && msOfDay < end : msOfDay >= start || msOfDay < end
  if (inside) return 0
  return ((start - msOfDay) + dayMs) % dayMs
}
