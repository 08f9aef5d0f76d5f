/**
 * The metric catalogue (the only prom-client import). Every metric a node exports is
 * declared here with its help text; README.md "Metrics" lists them. Each node owns a
 * registry, so several nodes can live in one process (tests, the demo).
 *
 * Hot-path counters are plain numbers published when /metrics is scraped (CounterFamily),
 * so counting a hit costs a Map lookup and an add.
 */
import client from 'prom-client'
import type { HeapTrimmer } from './heap-trimmer.ts'
import { DIRECT_MAX_BYTES, SMALL_BODY_BYTES, type FastFrontStats } from './http/fast-front.ts'

const { Registry, Counter, Gauge, Histogram, AggregatorRegistry, collectDefaultMetrics } = client

/**
 * How a cluster's primary merges one metric over its workers (prom-client's aggregators):
 * `sum` for what each worker counts itself, `max`, `min` or `first` for what every worker
 * reports about the same shared state, so it is not multiplied by the number of workers.
 */
export type MetricAggregator = client.Aggregator

/** One registry's metrics as plain data (prom-client's getMetricsAsJSON): what a worker sends its primary. */
export type MetricsSnapshot = ReadonlyArray<Awaited<ReturnType<client.Registry['getMetricsAsJSON']>>[number]>

interface Cell<L extends string> {
  readonly labels: Readonly<Record<L, string | number>>
  value: number
}

/**
 * A counter family counted in plain numbers and published at scrape time: `inc` on the
 * hot path is a string concatenation, a Map lookup and an add (prom-client's own
 * `labels().inc()` hashes and validates the labels on every call).
 */
export class CounterFamily<L extends string> {
  readonly #counter: client.Counter<L>
  readonly #cells = new Map<string, Cell<L>>()
  readonly #labelNames: readonly L[]

  constructor (registry: client.Registry, name: string, help: string, labelNames: readonly L[], aggregator: MetricAggregator = 'sum') {
    const cells = this.#cells
    this.#counter = new Counter({
      name,
      help,
      labelNames: [...labelNames],
      registers: [registry],
      aggregator,
      collect () {
        this.reset()
        for (const cell of cells.values()) this.inc(cell.labels as Partial<Record<L, string | number>>, cell.value)
      },
    })
    this.#labelNames = labelNames
  }

  inc (labels: Readonly<Record<L, string | number>>, value = 1): void {
    let key = ''
    for (const name of this.#labelNames) key += String(labels[name]) + '\u0000'
    const cell = this.#cells.get(key)
    if (cell !== undefined) {
      cell.value += value
      return
    }
    this.#cells.set(key, { labels: { ...labels }, value })
  }

  /** Current value summed over the label sets matching `labels` (tests and the bench read counters back). */
  async value (labels: Readonly<Record<string, string | number>> = {}): Promise<number> {
    let sum = 0
    for (const cell of this.#cells.values()) {
      const have = cell.labels as Readonly<Record<string, string | number>>
      if (Object.entries(labels).every(([k, want]) => String(have[k]) === String(want))) sum += cell.value
    }
    return sum
  }
}

/**
 * A histogram without labels counted in a typed array and published at scrape time:
 * `observe` is a bucket search and three adds (prom-client's own `observe()` hashes and
 * validates labels on every call). The registry renders it like a prom-client Histogram
 * (`_bucket{le}` cumulative, `_sum`, `_count`).
 */
export class HistogramCells {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly #bounds: Float64Array
  /** Per-bucket counts (not cumulative); the last cell is +Inf. */
  readonly #counts: Float64Array
  #sum = 0
  #count = 0

  constructor (registry: client.Registry, name: string, help: string, buckets: readonly number[]) {
    if (buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw new TypeError(`Expected buckets to be finite and increasing, got ${JSON.stringify(buckets)}`)
    }
    this.name = name
    this.help = help
    this.#bounds = Float64Array.from(buckets)
    this.#counts = new Float64Array(buckets.length + 1)
    registry.registerMetric(this as unknown as client.Metric)
  }

  observe (value: number): void {
    const bounds = this.#bounds
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.#counts[i]!++
    this.#sum += value
    this.#count++
  }

  /** Observations so far (tests). */
  get count (): number {
    return this.#count
  }

  /** The series, as prom-client's registry reads them. */
  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: Array<client.MetricValueWithName<string>> }> {
    const values: Array<client.MetricValueWithName<string>> = []
    const bucket = `${this.name}_bucket`
    let cumulative = 0
    for (let i = 0; i < this.#bounds.length; i++) {
      cumulative += this.#counts[i]!
      values.push({ labels: { le: this.#bounds[i]! }, value: cumulative, metricName: bucket })
    }
    values.push({ labels: { le: '+Inf' }, value: this.#count, metricName: bucket })
    values.push({ labels: {}, value: this.#sum, metricName: `${this.name}_sum` })
    values.push({ labels: {}, value: this.#count, metricName: `${this.name}_count` })
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  reset (): void {
    this.#counts.fill(0)
    this.#sum = 0
    this.#count = 0
  }
}

/** One upstream member's health as metrics read it (structurally the proxy's UpstreamHealth). */
export interface UpstreamHealthSample {
  readonly name: string
  readonly state: 'closed' | 'open' | 'half-open'
  readonly probeDown: boolean
  readonly active?: number
  readonly queued?: number
  readonly rejectedQueueFull?: number
  readonly rejectedQueueTimeout?: number
}

/**
 * A fast front's running totals, as lib/http/fast-front.ts counts them (the control plane's
 * front has neither of the edge's direct senders, so its sample need not count them).
 */
export type FastPathSample = Omit<FastFrontStats, OptionalFastField> & Partial<Pick<FastFrontStats, OptionalFastField>>
type OptionalFastField = 'sentFromFileBytes' | 'sentDirect'

/** Series names and help texts of one role's fast-path metrics, by FastPathSample field. */
type FastPathSeries = Readonly<Record<Exclude<keyof FastPathSample, OptionalFastField>, readonly [name: string, help: string]>> & {
  readonly [field in OptionalFastField]?: readonly [name: string, help: string]
}

/**
 * Publishes a fast front's totals at scrape time: `answered`, `handedOff`, `flushes` and (when
 * named) `sentFromFileBytes` and `sentDirect` as counters, `open` as a gauge; all read 0 while `source` gives
 * undefined (fast path off).
 */
function watchFastFront (registry: client.Registry, series: FastPathSeries, source: () => FastPathSample | undefined): void {
  for (const field of ['answered', 'handedOff', 'flushes', 'sentFromFileBytes', 'sentDirect'] as const) {
    const named = series[field]
    if (named === undefined) continue
    const [name, help] = named
    scrapedCounter(registry, name, help, () => source()?.[field] ?? 0)
  }
  const [name, help] = series.open
  new Gauge({ name, help, registers: [registry], collect () { this.set(source()?.open ?? 0) } })
}

/** A counter whose value is a running total kept elsewhere, read when /metrics is scraped. */
function scrapedCounter (registry: client.Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect () {
      this.reset()
      this.inc(read())
    },
  })
}

/** Sizes and counts a store reports when /metrics is scraped. */
export interface StoreGaugeSource {
  readonly sizeBytes: number
  readonly count: number
}

export interface CacheNodeMetricsOptions {
  /** Role of the node, a label on every metric: edge or shield. */
  readonly role: string
  /** Node id, a label on every metric. */
  readonly node: string
  /** Adds Node process metrics (CPU, memory, event loop lag); off in tests with many nodes per process. */
  readonly processMetrics?: boolean
}

/** The catalogue of a cache node (edge or shield). */
export class CacheNodeMetrics {
  readonly registry: client.Registry
  /** Client requests by cache phase and response status. */
  readonly requests: CounterFamily<'phase' | 'status'>
  /** Body bytes sent to clients by where they came from. */
  readonly servedBytes: CounterFamily<'source'>
  /** Cache lookups: hit (by tier) or miss; the hit ratio is hit / (hit + miss). */
  readonly lookups: CounterFamily<'result' | 'tier'>
  /** Fills (upstream fetches that feed the cache) by outcome. */
  readonly fills: CounterFamily<'outcome'>
  /** Requests that joined another request's fill, or gave up waiting for it. */
  readonly collapsed: CounterFamily<'outcome'>
  /** Responses not admitted to the cache, by reason. */
  readonly admissionRejections: CounterFamily<'reason'>
  /** Upstream responses by upstream and status class; errors by code. */
  readonly upstreamResponses: CounterFamily<'upstream' | 'status'>
  readonly upstreamErrors: CounterFamily<'upstream' | 'code'>
  /** Time from sending an upstream request to its response headers. */
  readonly upstreamLatency: client.Histogram<'upstream'>
  /** Store events. */
  readonly evictions: CounterFamily<'tier'>
  readonly storeWriteErrors: CounterFamily<'tier'>
  readonly storeCorrupt: CounterFamily<'tier'>
  /** Reads of stored objects, and disk index scans of directories or files, that failed with an I/O error (EIO, EMFILE). */
  readonly storeReadErrors: CounterFamily<'tier'>
  /** Client connections closed before their response completed. */
  readonly clientAborts: CounterFamily<'phase'>
  /** Stale responses served, by reason (stale-while-revalidate, stale-if-error, max-stale). */
  readonly staleServed: CounterFamily<'reason'>
  /** Conditional revalidations by outcome (not-modified, modified, failed). */
  readonly revalidations: CounterFamily<'outcome'>
  /** Purges by kind (url, prefix) and invalidations by unsafe methods (kind invalidation). */
  readonly purges: CounterFamily<'kind'>
  /** Requests refused for a missing or bad playback token, by reason. */
  readonly tokenRejections: CounterFamily<'reason'>
  readonly #fillsInFlight: client.Gauge
  readonly #storeBytes: client.Gauge<'tier'>
  readonly #storeObjects: client.Gauge<'tier'>
  readonly #stores = new Map<string, StoreGaugeSource>()
  #fillsInFlightSource: () => number = () => 0

  constructor (options: CacheNodeMetricsOptions) {
    const registry = new Registry()
    registry.setDefaultLabels({ role: options.role, node: options.node })
    this.registry = registry
    if (options.processMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'streamedge_' })
    const p = 'streamedge_'
    this.requests = new CounterFamily(registry, `${p}requests_total`, 'Client requests by cache phase and response status', ['phase', 'status'])
    this.servedBytes = new CounterFamily(registry, `${p}served_bytes_total`, 'Body bytes sent to clients, by source (memory, disk, fill, pass)', ['source'])
    this.lookups = new CounterFamily(registry, `${p}cache_lookups_total`, 'Cache lookups by result (hit, miss) and tier (memory, disk, none)', ['result', 'tier'])
    this.fills = new CounterFamily(registry, `${p}fills_total`, 'Upstream fills by outcome (stored, not-stored, failed, aborted)', ['outcome'])
    this.collapsed = new CounterFamily(registry, `${p}collapsed_requests_total`, 'Requests that joined an in-progress fill (joined) or gave up waiting for one (lock-timeout, not-shareable)', ['outcome'])
    this.admissionRejections = new CounterFamily(registry, `${p}admission_rejections_total`, 'Responses not stored, by reason', ['reason'])
    this.upstreamResponses = new CounterFamily(registry, `${p}upstream_responses_total`, 'Upstream responses by upstream and status code', ['upstream', 'status'])
    this.upstreamErrors = new CounterFamily(registry, `${p}upstream_errors_total`, 'Upstream failures by upstream and error code', ['upstream', 'code'])
    this.upstreamLatency = new Histogram({
      name: `${p}upstream_first_byte_seconds`,
      help: 'Time from sending an upstream request to receiving its response headers',
      labelNames: ['upstream'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    })
    this.evictions = new CounterFamily(registry, `${p}store_evictions_total`, 'Objects evicted to make room, by tier', ['tier'])
    this.storeWriteErrors = new CounterFamily(registry, `${p}store_write_errors_total`, 'Failed object writes (full disk, I/O errors), by tier', ['tier'])
    this.storeCorrupt = new CounterFamily(registry, `${p}store_corrupt_total`, 'Stored objects that failed integrity checks and were deleted, by tier', ['tier'])
    this.storeReadErrors = new CounterFamily(registry, `${p}store_read_errors_total`, 'Failed reads of stored objects and failed disk index scans (left unindexed, retried), by tier', ['tier'])
    this.clientAborts = new CounterFamily(registry, `${p}client_aborts_total`, 'Client connections closed before the response completed, by cache phase', ['phase'])
    this.staleServed = new CounterFamily(registry, `${p}stale_served_total`, 'Stale responses served, by reason (stale-while-revalidate, stale-if-error, max-stale)', ['reason'])
    this.revalidations = new CounterFamily(registry, `${p}revalidations_total`, 'Conditional revalidations upstream, by outcome (not-modified, modified, failed)', ['outcome'])
    this.purges = new CounterFamily(registry, `${p}purges_total`, 'Purges by kind (url, prefix) and invalidations after unsafe methods (invalidation)', ['kind'])
    this.tokenRejections = new CounterFamily(registry, `${p}token_rejections_total`, 'Requests refused with 403 for a missing, forged, expired or out-of-scope playback token, by reason', ['reason'])
    // Gauges read their sources at scrape time: nothing to keep in step on the hot path.
    const fillsInFlight = (): number => this.#fillsInFlightSource()
    this.#fillsInFlight = new Gauge({
      name: `${p}fills_in_flight`,
      help: 'Upstream fills in progress',
      registers: [registry],
      collect () { this.set(fillsInFlight()) },
    })
    const stores = this.#stores
    this.#storeBytes = new Gauge({
      name: `${p}store_bytes`,
      help: 'Bytes held by each cache tier',
      labelNames: ['tier'],
      registers: [registry],
      collect () { for (const [tier, s] of stores) this.labels({ tier }).set(s.sizeBytes) },
    })
    this.#storeObjects = new Gauge({
      name: `${p}store_objects`,
      help: 'Objects held by each cache tier',
      labelNames: ['tier'],
      registers: [registry],
      collect () { for (const [tier, s] of stores) this.labels({ tier }).set(s.count) },
    })
  }

  /**
   * Reports the malloc heap trimmer (lib/heap-trimmer.ts) at scrape time: trims run and the
   * event-loop time they took, and how glibc's heap is used (none of it without the native half).
   */
  watchHeapTrimmer (trimmer: HeapTrimmer): void {
    const p = 'streamedge_'
    const registry = this.registry
    scrapedCounter(registry, `${p}malloc_trims_total`, 'Trims of the malloc heap (malloc_trim: free pages given back to the kernel), server.mallocTrimIntervalMs apart', () => trimmer.stats.trims)
    scrapedCounter(registry, `${p}malloc_trim_seconds_total`, 'Event-loop time spent trimming the malloc heap', () => trimmer.stats.seconds)
    new Gauge({
      name: `${p}malloc_heap_bytes`,
      help: 'glibc malloc heap by state: in_use and free (inside the arenas; free pages stay resident until trimmed), mmapped (large allocations mapped on their own)',
      labelNames: ['state'],
      registers: [registry],
      collect () {
        const heap = trimmer.heapStats()
        if (heap === undefined) return
        this.labels({ state: 'in_use' }).set(heap.inUseBytes)
        this.labels({ state: 'free' }).set(heap.freeBytes)
        this.labels({ state: 'mmapped' }).set(heap.mmappedBytes)
      },
    })
  }

  /** Reports a store's size and object count at scrape time. */
  watchStore (tier: string, source: StoreGaugeSource): void {
    this.#stores.set(tier, source)
  }

  /**
   * Reports upstream members' health at scrape time: breaker state, probe verdict,
   * in-flight and queued requests, and refusals (origin protection).
   */
  watchUpstreams (source: () => readonly UpstreamHealthSample[]): void {
    const p = 'streamedge_'
    const registry = this.registry
    // Reset at each scrape, then the current members: one a reload removed (shield origins) leaves the series.
    const perMember = (name: string, help: string, read: (h: UpstreamHealthSample) => number | undefined): void => {
      new Gauge({
        name: `${p}${name}`,
        help,
        labelNames: ['upstream'],
        registers: [registry],
        collect () {
          this.reset()
          for (const h of source()) {
            const value = read(h)
            if (value !== undefined) this.labels({ upstream: h.name }).set(value)
          }
        },
      })
    }
    perMember('upstream_up', 'Whether each upstream member is in use: 1 closed breaker and probe up, 0.5 half-open (on trial), 0 marked down',
      (h) => h.probeDown || h.state === 'open' ? 0 : h.state === 'half-open' ? 0.5 : 1)
    perMember('upstream_active_requests', 'Requests in flight to each origin (origin pools: never above the concurrency cap)', (h) => h.active)
    perMember('upstream_queued_requests', 'Requests waiting for a slot to each origin', (h) => h.queued)
    const seen = new Map<string, number>()
    new Counter({
      name: `${p}upstream_rejections_total`,
      help: 'Requests refused to protect an origin, by reason (queue-full, queue-timeout): answered 503 with Retry-After',
      labelNames: ['upstream', 'reason'],
      registers: [registry],
      collect () {
        for (const h of source()) {
          for (const [reason, total] of [['queue-full', h.rejectedQueueFull], ['queue-timeout', h.rejectedQueueTimeout]] as const) {
            if (total === undefined) continue
            const key = `${h.name}\u0000${reason}`
            const delta = total - (seen.get(key) ?? 0)
            seen.set(key, total)
            if (delta > 0) this.labels({ upstream: h.name, reason }).inc(delta)
          }
        }
      },
    })
  }

  /** Publishes the hit fast path's totals at scrape time (all 0 while the fast path is off). */
  watchFastPath (source: () => FastPathSample | undefined): void {
    watchFastFront(this.registry, {
      answered: ['streamedge_fast_path_responses_total', 'Requests answered by the fast path below node:http (memory-tier hits and joins of fills in flight)'],
      handedOff: ['streamedge_fast_path_handoffs_total', 'Connections the hit fast path handed to node:http at the first request it could not answer'],
      open: ['streamedge_fast_path_connections', 'Client connections the hit fast path holds'],
      flushes: ['streamedge_fast_path_flushes_total', 'Event-loop turns whose fast-path answers were written together (responses / flushes: answers per burst)'],
      sentFromFileBytes: ['streamedge_fast_path_sendfile_bytes_total', 'Body bytes of fast-path hits the kernel sent from the disk tier\'s page cache (server.sendfile), not copied from memory'],
      sentDirect: ['streamedge_fast_path_direct_sends_total', `Fast-path answers with a medium body (over ${SMALL_BODY_BYTES / 1024} KiB, up to ${DIRECT_MAX_BYTES / 1024} KiB) whose head and body went out in one sendmsg(2) from memory, past node's stream layers (native helper)`],
    }, source)
  }

  /** Reports the number of fills in flight at scrape time. */
  watchFillsInFlight (source: () => number): void {
    this.#fillsInFlightSource = source
  }

  get contentType (): string {
    return this.registry.contentType
  }

  /** The Prometheus text exposition of every metric. */
  async render (): Promise<string> {
    return await this.registry.metrics()
  }
}

/** What the HLS layer reports at scrape time (index size, prefetch and prefill state). */
export interface HlsGaugeSource {
  readonly indexRenditions: number
  readonly indexSegments: number
  readonly prefetchInFlight: number
  readonly prefetchQueued: number
  /** Prefill jobs by state. */
  readonly prefillJobs: Readonly<Record<string, number>>
  /** Segments known to running or waiting prefill jobs and not done yet. */
  readonly prefillRemaining: number
}

/**
 * The HLS catalogue (edge/hls): playlist rules, prefetch and prefill. It is built before
 * its node exists (the content policy is made while the node starts) and joins the node's
 * registry with {@link HlsMetrics.registerOn}, so its series carry the node's role and
 * node labels. Its own registry serves tests.
 */
export class HlsMetrics {
  readonly registry: client.Registry
  /** Playlists admitted, by type (master, live, vod, blocking, unparsed). */
  readonly playlists: CounterFamily<'type'>
  /** Live playlists whose media sequence went backwards: kept the stored one, or accepted after the hold. */
  readonly regressions: CounterFamily<'action'>
  /** Background refreshes of fresh live playlists asked for (refresh-ahead). */
  readonly refreshAhead: CounterFamily<never>
  /** 404s for segments a live playlist has not published yet, cached briefly. */
  readonly notPublished: CounterFamily<never>
  /** Prefetches by outcome (filled, joined, cached, not-stored, failed, dropped). */
  readonly prefetches: CounterFamily<'outcome'>
  /** Upstream body bytes fetched by prefetches. */
  readonly prefetchBytes: CounterFamily<never>
  /** What became of prefetched segments: hit (a client asked for it) or wasted (nobody did in time). */
  readonly prefetchUse: CounterFamily<'outcome'>
  /** Prefill segments by outcome (filled, cached, failed). */
  readonly prefillSegments: CounterFamily<'outcome'>
  /** Upstream body bytes fetched by prefill jobs. */
  readonly prefillBytes: CounterFamily<never>
  #source: () => HlsGaugeSource | undefined = () => undefined

  constructor () {
    const registry = new Registry()
    this.registry = registry
    const p = 'streamedge_hls_'
    const family = <L extends string>(name: string, help: string, labels: readonly L[]): CounterFamily<L> => new CounterFamily(registry, `${p}${name}`, help, labels)
    this.playlists = family('playlists_total', 'Playlists admitted to the cache, by type (master, live, vod, blocking, unparsed)', ['type'])
    this.regressions = family('media_sequence_regressions_total', 'Live playlists whose media sequence went backwards: kept (the stored one is served) or accepted (after the hold, a restarted stream)', ['action'])
    this.refreshAhead = family('refresh_ahead_total', 'Background refreshes of fresh live playlists (one per playlist per refresh interval)', [])
    this.notPublished = family('not_published_total', 'Segment 404s for a live rendition negatively cached for a fraction of the target duration', [])
    this.prefetches = family('prefetches_total', 'Segment prefetches by outcome (filled, joined, cached, not-stored, failed, dropped)', ['outcome'])
    this.prefetchBytes = family('prefetch_bytes_total', 'Upstream body bytes fetched by prefetches', [])
    this.prefetchUse = family('prefetched_segments_total', 'Prefetched segments by what became of them: hit (requested later) or wasted (not requested in time)', ['outcome'])
    this.prefillSegments = family('prefill_segments_total', 'Prefill segments by outcome (filled, cached: already held, failed)', ['outcome'])
    this.prefillBytes = family('prefill_bytes_total', 'Upstream body bytes fetched by prefill jobs', [])
    const source = (): HlsGaugeSource | undefined => this.#source()
    const gauge = (name: string, help: string, read: (s: HlsGaugeSource) => number): void => {
      new Gauge({ name: `${p}${name}`, help, registers: [registry], collect () { const s = source(); if (s !== undefined) this.set(read(s)) } })
    }
    gauge('index_renditions', 'Media playlists in the rendition index', (s) => s.indexRenditions)
    gauge('index_segments', 'Segment URIs in the rendition index', (s) => s.indexSegments)
    gauge('prefetch_in_flight', 'Prefetches under way', (s) => s.prefetchInFlight)
    gauge('prefetch_queued', 'Prefetches waiting for a slot', (s) => s.prefetchQueued)
    gauge('prefill_remaining_segments', 'Segments that waiting or running prefill jobs have yet to deal with', (s) => s.prefillRemaining)
    new Gauge({
      name: `${p}prefill_jobs`,
      help: 'Prefill jobs by state (waiting, running, done, failed, cancelled)',
      labelNames: ['state'],
      registers: [registry],
      collect () {
        const s = source()
        if (s === undefined) return
        this.reset()
        for (const [state, n] of Object.entries(s.prefillJobs)) this.labels({ state }).set(n)
      },
    })
  }

  /** Reads the index, prefetch and prefill gauges at scrape time. */
  watch (source: () => HlsGaugeSource): void {
    this.#source = source
  }

  /** Adds every HLS metric to a node's registry (its default labels apply). */
  registerOn (registry: client.Registry): void {
    for (const { name } of this.registry.getMetricsAsArray()) {
      const metric = this.registry.getSingleMetric(name)
      if (metric !== undefined && registry.getSingleMetric(name) === undefined) registry.registerMetric(metric)
    }
  }

  /** The Prometheus text of the HLS metrics alone. */
  async render (): Promise<string> {
    return await this.registry.metrics()
  }
}

/** Options of {@link ControlPlaneMetrics}. */
export interface ControlPlaneMetricsOptions {
  /** Control-plane instance id, a label on every metric. */
  readonly node: string
  readonly processMetrics?: boolean
}

/** A node's health as the control plane sees it, read at scrape time. */
export interface NodeHealthGaugeSource {
  readonly id: string
  readonly group: string
  readonly status: string
  /** Seconds since the last heartbeat, undefined when the node never sent one. */
  readonly heartbeatAgeSeconds: number | undefined
}

/** The node statuses a control plane reports (health-tracker.ts NodeStatus). */
export const NODE_STATUSES = ['available', 'overloaded', 'draining', 'unknown', 'not-ready', 'heartbeat-stale', 'down', 'offline'] as const

/** The catalogue of a control plane. */
export class ControlPlaneMetrics {
  readonly registry: client.Registry
  /** Steering decisions by outcome (redirect, explained, denied-licence, denied-unknown-geo, no-node, bad-request) and chosen group. */
  readonly decisions: CounterFamily<'outcome' | 'group'>
  /** Licence refusals (451) by client country (`unknown` when it has none) and reason. */
  readonly licenceDenials: CounterFamily<'country' | 'reason'>
  /** Clients no coverage zone or GeoIP record located, by the policy applied. */
  readonly unknownGeo: CounterFamily<'policy'>
  /** Decision-cache lookups by result (hit, miss). */
  readonly decisionCache: CounterFamily<'result'>
  /** Time to decide and answer one steering request. */
  readonly decisionLatency: HistogramCells
  /** Steering manifests served, by outcome (ok, invalid-session). */
  readonly steeringManifests: CounterFamily<'outcome'>
  /** Node status changes, by target node and new status (`node` is this control plane's own label). */
  readonly healthChanges: CounterFamily<'target' | 'status'>
  /** Heartbeats received, by outcome (accepted, bad-signature, unknown-node, invalid). */
  readonly heartbeats: CounterFamily<'outcome'>
  /** Probe results, by node and outcome (ok, failed). */
  readonly probes: CounterFamily<'target' | 'outcome'>
  /** Purge fan-outs by outcome (ok, partial), and node purge results by node and outcome. */
  readonly purges: CounterFamily<'outcome'>
  readonly nodePurges: CounterFamily<'target' | 'outcome'>
  /** Data-file and GeoIP reloads by file kind and outcome (ok, refused). */
  readonly reloads: CounterFamily<'file' | 'outcome'>
  /** Title-inventory polls of nodes, by target node and outcome (ok, failed). */
  readonly inventoryPolls: CounterFamily<'target' | 'outcome'>
  #nodes: () => readonly NodeHealthGaugeSource[] = () => []

  constructor (options: ControlPlaneMetricsOptions) {
    const registry = new Registry()
    registry.setDefaultLabels({ role: 'control-plane', node: options.node })
    this.registry = registry
    if (options.processMetrics === true) collectDefaultMetrics({ register: registry, prefix: 'streamedge_' })
    const p = 'streamedge_cp_'
    this.decisions = new CounterFamily(registry, `${p}decisions_total`, 'Steering decisions by outcome and chosen cache group (none when no edge was chosen)', ['outcome', 'group'])
    this.licenceDenials = new CounterFamily(registry, `${p}licence_denials_total`, 'Requests refused by a licensing rule (451), by client country and reason', ['country', 'reason'])
    this.unknownGeo = new CounterFamily(registry, `${p}unknown_geo_total`, 'Clients neither a coverage zone nor GeoIP located, by the unknown-location policy applied', ['policy'])
    this.decisionCache = new CounterFamily(registry, `${p}decision_cache_total`, 'Decision cache lookups by result (hit, miss)', ['result'])
    this.decisionLatency = new HistogramCells(registry, `${p}decision_seconds`, 'Time from receiving a steering request to sending its answer',
      [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1])
    this.steeringManifests = new CounterFamily(registry, `${p}steering_manifests_total`, 'HLS steering manifests served, by outcome (ok, invalid-session)', ['outcome'])
    // Every worker of a cluster sees the same changes and reloads the same files: the most any worker counted, not the sum.
    this.healthChanges = new CounterFamily(registry, `${p}node_health_changes_total`, 'Node status changes, by target node and the status it changed to', ['target', 'status'], 'max')
    this.heartbeats = new CounterFamily(registry, `${p}heartbeats_total`, 'Heartbeats received, by outcome (accepted, bad-signature, unknown-node, invalid)', ['outcome'])
    this.probes = new CounterFamily(registry, `${p}probes_total`, 'Active /readyz probes, by target node and outcome (ok, failed)', ['target', 'outcome'])
    this.purges = new CounterFamily(registry, `${p}purges_total`, 'Purge fan-outs by outcome (ok: every node purged, partial)', ['outcome'])
    this.nodePurges = new CounterFamily(registry, `${p}node_purges_total`, 'Per-node purge results of fan-outs, by target node and outcome (ok, failed)', ['target', 'outcome'])
    this.inventoryPolls = new CounterFamily(registry, `${p}inventory_polls_total`, 'Polls of node title inventories (GET /admin/inventory), by target node and outcome (ok, failed)', ['target', 'outcome'])
    this.reloads = new CounterFamily(registry, `${p}reloads_total`, 'Reloads of watched files by kind (nodes, licensing, coverage-zones, geoip) and outcome (ok, refused)', ['file', 'outcome'], 'max')
    const nodes = (): readonly NodeHealthGaugeSource[] => this.#nodes()
    new Gauge({
      name: `${p}node_status`,
      help: 'One series per node and status: 1 for the status the node is in, 0 for the others',
      labelNames: ['target', 'group', 'status'],
      registers: [registry],
      // one worker's view, whole: every worker steers from the same (relayed) health
      aggregator: 'first',
      collect () {
        this.reset()
        for (const n of nodes()) {
          for (const status of NODE_STATUSES) this.labels({ target: n.id, group: n.group, status }).set(n.status === status ? 1 : 0)
        }
      },
    })
    new Gauge({
      name: `${p}heartbeat_age_seconds`,
      help: 'Seconds since each node last sent a heartbeat (nodes that never sent one are absent)',
      labelNames: ['target'],
      registers: [registry],
      // the freshest report any worker holds (a restarted worker may have missed one)
      aggregator: 'min',
      collect () {
        this.reset()
        for (const n of nodes()) if (n.heartbeatAgeSeconds !== undefined) this.labels({ target: n.id }).set(n.heartbeatAgeSeconds)
      },
    })
  }

  /** Reports node statuses and heartbeat ages at scrape time. */
  watchNodes (source: () => readonly NodeHealthGaugeSource[]): void {
    this.#nodes = source
  }

  /**
   * Reports the HTTP fast path (lib/http/fast-front.ts) at scrape time: requests it answered,
   * connections it handed to node:http, and connections it holds.
   */
  watchFastPath (source: () => FastPathSample): void {
    watchFastFront(this.registry, {
      answered: ['streamedge_cp_fast_path_requests_total', 'Requests answered by the fast path below node:http (steering redirects and refusals)'],
      handedOff: ['streamedge_cp_fast_path_handoffs_total', 'Connections the fast path handed to node:http (a request it does not answer; node:http keeps the connection)'],
      open: ['streamedge_cp_fast_path_connections', 'Client connections the fast path holds'],
      flushes: ['streamedge_cp_fast_path_flushes_total', 'Event-loop turns whose fast-path answers were written together (requests / flushes: answers per burst)'],
    }, source)
  }

  get contentType (): string {
    return this.registry.contentType
  }

  /** The Prometheus text exposition of every metric. */
  async render (): Promise<string> {
    return await this.registry.metrics()
  }

  /** Every metric as plain data (default labels applied), for a cluster primary to aggregate. */
  async snapshot (): Promise<MetricsSnapshot> {
    return await this.registry.getMetricsAsJSON()
  }
}

/** Options of {@link ControlPlaneClusterMetrics}. */
export interface ControlPlaneClusterMetricsOptions {
  /** Control-plane instance id: the `node` label the workers' series carry too. */
  readonly node: string
  /** Workers serving at scrape time. */
  readonly workers: () => number
}

/**
 * A control-plane cluster's own metrics (kept by the primary) and the whole cluster's
 * exposition: the workers' snapshots merged by each metric's aggregator (prom-client's
 * AggregatorRegistry.aggregate), so series names and labels are those of one process.
 */
export class ControlPlaneClusterMetrics {
  readonly registry: client.Registry
  readonly #missing: client.Gauge

  constructor (options: ControlPlaneClusterMetricsOptions) {
    const registry = new Registry()
    registry.setDefaultLabels({ role: 'control-plane', node: options.node })
    this.registry = registry
    new Gauge({
      name: 'streamedge_cp_workers',
      help: 'Control-plane worker processes serving on the shared port',
      registers: [registry],
      collect () { this.set(options.workers()) },
    })
    this.#missing = new Gauge({
      name: 'streamedge_cp_metrics_workers_missing',
      help: 'Serving workers left out of this /metrics answer (no snapshot within the deadline, or their snapshot failed): their counters are missing from the sums',
      registers: [registry],
    })
  }

  /**
   * The Prometheus text of the workers' snapshots merged, then the cluster's own metrics;
   * `missing` serving workers sent none (the gauge is read before the first await, so
   * overlapping answers each carry their own count).
   */
  async render (workers: readonly MetricsSnapshot[], missing = 0): Promise<string> {
    this.#missing.set(missing)
    const own = await this.registry.getMetricsAsJSON()
    return await AggregatorRegistry.aggregate([...workers, own] as object[]).metrics()
  }
}
