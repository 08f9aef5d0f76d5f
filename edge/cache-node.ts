/**
 * A running cache node: stores, upstream, pipeline and server wired together.
 * The edge role (edge/main.ts) and, later, the shield role build one from their config;
 * tests build them directly with options.
 */
import { join } from 'node:path'
import type { FastFrontStats } from '../lib/http/fast-front.ts'
import { CacheNodeMetrics } from '../lib/metrics.ts'
import { createLogger, type Logger } from '../lib/log.ts'
import { pageCacheCheck, zeroCopy, zeroCopyUnavailable } from '../lib/native/zero-copy.ts'
import { isLoopback } from '../lib/net/ip-address.ts'
import { heapTrim, heapTrimUnavailable } from '../lib/native/heap-trim.ts'
import { HeapTrimmer } from '../lib/heap-trimmer.ts'
import { DiskStore } from './cache/disk-store.ts'
import { MemoryStore } from './cache/memory-store.ts'
import { TieredStore } from './cache/tiered-store.ts'
import type { StoreObserver } from './cache/types.ts'
import { CacheProxy, type CacheProxyOptions } from './proxy/cache-proxy.ts'
import { NodeServer, type ListenAddress } from './proxy/node-server.ts'
import { createAdminHandler } from './proxy/admin.ts'
import { Forwarding } from './proxy/forwarding.ts'
import { AccessGate } from './proxy/access-gate.ts'
import type { TokenCheck } from './auth/token-check.ts'
import { createFastHitHandler } from './proxy/fast-hit.ts'
import { HeartbeatClient } from '../lib/protocol/heartbeat-client.ts'
import { steeringTransform } from './hls/steering-transform.ts'
import { playlistRewrites } from './hls/token-uris.ts'
import type { ContentPolicy } from './proxy/content-policy.ts'
import { PurgeJournal } from './cache/purge-journal.ts'
import { HttpUpstream, type Upstream } from './proxy/upstream.ts'

/** The cache proxy's policy settings, which a node passes through as they are. */
type ProxyPolicyOptions = Pick<CacheProxyOptions, 'maxObjectBytes' | 'stripQueryParams' | 'checkIntegrity' | 'negativeTtlSeconds' | 'negativeTtlMaxSeconds' | 'staleIfErrorSeconds' | 'allowSetCookie' | 'maxRanges' | 'rangeMissOffsetBytes'>

/**
 * Which clients large fast-path hits are sent to from the page cache (`server.sendfile`).
 * 'remote': those not on this host's loopback. On loopback the client's end of a transfer
 * runs on the same CPUs, and the page-cache fragments sendfile hands over cost the receiver
 * more than the server's copy costs it (bench hot-segment: server + client CPU per GB);
 * across a network the receiver is another machine and sendfile only saves the copy.
 */
export type SendfileMode = 'remote' | 'on' | 'off'

const notLoopback = (remoteAddress: string | undefined): boolean => !isLoopback(remoteAddress)

export interface CacheNodeOptions extends ProxyPolicyOptions {
  readonly role: 'edge' | 'shield'
  readonly id: string
  readonly listen: ListenAddress
  readonly tls?: { readonly listen: ListenAddress, readonly cert: Buffer | string, readonly key: Buffer | string }
  /** Origin base URL; ignored when `upstream` is given. */
  readonly origin?: string
  /** A ready-made upstream (chains, tests). */
  readonly upstream?: Upstream
  readonly cacheDir: string
  readonly memoryMaxBytes: number
  readonly memoryMaxObjectBytes: number
  readonly diskMaxBytes: number
  readonly diskFsync: boolean
  readonly lockTimeoutMs: number
  /** Bearer token for /admin/ endpoints (purge); they answer 404 when unset. */
  readonly adminToken?: string | undefined
  /** Peers whose X-Forwarded-For is believed (CIDR prefixes or addresses): load balancers, edges in front of a shield. */
  readonly trustedProxies?: readonly string[]
  /**
   * Playback tokens: verified on every request when required (403 otherwise), always stripped from URLs;
   * when required, carried onto the root-relative and same-host URIs of the playlists served.
   */
  readonly token?: TokenCheck | undefined
  /**
   * The control plane: heartbeats go to it (when a key is set), and master playlists get
   * EXT-X-CONTENT-STEERING pointing at it.
   */
  readonly controlPlane?: { readonly url: string, readonly heartbeatKey?: string | undefined, readonly heartbeatIntervalMs: number } | undefined
  /** Content-aware rules (HLS), given the node's proxy so prefetchers can warm objects through it. */
  readonly contentPolicy?: (proxy: CacheProxy, metrics: CacheNodeMetrics) => ContentPolicy
  readonly upstreamTimeouts: {
    readonly connectTimeoutMs: number
    readonly firstByteTimeoutMs: number
    readonly idleTimeoutMs: number
    readonly connections: number
    readonly keepAliveTimeoutMs: number
  }
  readonly keepAliveTimeoutMs: number
  readonly headersTimeoutMs: number
  readonly shutdownGraceMs: number
  /**
   * Answer fresh memory hits below node:http on the plain HTTP listener
   * (edge/proxy/fast-hit.ts). Default true; false sends every request through node:http.
   */
  readonly fastPath?: boolean
  /**
   * Send large fast-path hits from the disk tier's file in the page cache (sendfile(2),
   * lib/native/zero-copy.ts) when the native helper is built: 'on' to every client, 'remote'
   * (the default) to clients that are not on this host's loopback, 'off' to none
   * (`server.sendfile`, {@link SendfileMode}).
   */
  readonly sendfile?: SendfileMode
  /**
   * Trim the malloc heap this often (lib/heap-trimmer.ts), when the native helper is built.
   * Default 0: never (several nodes may share a test process; the CLI passes the config's value).
   */
  readonly mallocTrimIntervalMs?: number
  readonly accessLog: boolean
  readonly logger?: Logger
  readonly processMetrics?: boolean
  readonly now?: () => number
}

/** How long purge rules outlive the index rebuild that applied them (a margin for writes racing the rebuild). */
const JOURNAL_KEEP_MS = 10 * 60 * 1000

/** Defaults for everything but identity, addresses and directories (tests and the demo use them). */
export const CACHE_NODE_DEFAULTS = {
  memoryMaxBytes: 256 * 1024 * 1024,
  memoryMaxObjectBytes: 16 * 1024 * 1024,
  diskMaxBytes: 10 * 1024 * 1024 * 1024,
  diskFsync: false,
  maxObjectBytes: 1024 * 1024 * 1024,
  lockTimeoutMs: 5000,
  stripQueryParams: [],
  checkIntegrity: true,
  negativeTtlSeconds: 10,
  negativeTtlMaxSeconds: 60,
  staleIfErrorSeconds: 0,
  allowSetCookie: false,
  maxRanges: 16,
  rangeMissOffsetBytes: 1024 * 1024,
  upstreamTimeouts: { connectTimeoutMs: 3000, firstByteTimeoutMs: 10000, idleTimeoutMs: 10000, connections: 128, keepAliveTimeoutMs: 30000 },
  keepAliveTimeoutMs: 5000,
  headersTimeoutMs: 10000,
  shutdownGraceMs: 10000,
  accessLog: true,
} as const satisfies Partial<CacheNodeOptions>

export interface RunningCacheNode {
  readonly url: string
  readonly httpsUrl: string | undefined
  readonly metrics: CacheNodeMetrics
  readonly store: TieredStore
  readonly proxy: CacheProxy
  readonly logger: Logger
  /** The fast path's counters now (undefined when it is off). */
  fastPathStats (): FastFrontStats | undefined
  /** Graceful stop: stop accepting, finish in-flight responses up to the grace period, close stores. */
  close (): Promise<void>
}

/** Builds and starts a cache node. */
export async function startCacheNode (options: CacheNodeOptions): Promise<RunningCacheNode> {
  const logger = options.logger ?? createLogger({ bindings: { role: options.role, node: options.id } })
  const metrics = new CacheNodeMetrics({ role: options.role, node: options.id, processMetrics: options.processMetrics ?? false })
  const observer: StoreObserver = {
    onEvict: (meta, tier) => { metrics.evictions.inc({ tier }) },
    onCorrupt: (detail) => {
      metrics.storeCorrupt.inc({ tier: 'disk' })
      logger.warn({ path: detail.path, reason: detail.reason, cacheKey: detail.key }, 'corrupt cache file deleted')
    },
    onWriteError: (err, key) => {
      metrics.storeWriteErrors.inc({ tier: 'disk' })
      logger.error({ err, cacheKey: key }, 'cache write failed; object not stored')
    },
    // Also a directory or file the disk index scan could not read: retried with backoff, its files unindexed meanwhile.
    onReadError: (err, detail) => {
      metrics.storeReadErrors.inc({ tier: 'disk' })
      logger.warn({ err, path: detail.path, cacheKey: detail.key }, 'cache read failed; answered as a miss or left unindexed')
    },
  }
  const journal = await PurgeJournal.open(join(options.cacheDir, 'purge-journal.jsonl'))
  const disk = new DiskStore({
    dir: options.cacheDir,
    maxBytes: options.diskMaxBytes,
    readWholeMaxBytes: options.memoryMaxObjectBytes,
    fsync: options.diskFsync,
    observer,
    isPurged: (meta) => journal.isPurged(meta),
  })
  await disk.open()
  // Once the rebuild has applied every purge to every file on disk, old rules are dead weight. Not before:
  // a rebuild cut short by close, or one that could not read some files, left files the rules must still reach.
  const rebuildStartedMs = Date.now()
  void disk.indexCompleted.then((complete) => complete ? journal.compact(rebuildStartedMs - JOURNAL_KEEP_MS) : undefined).catch((err: unknown) => {
    logger.warn({ err }, 'purge journal compaction failed')
  })
  let tiered: TieredStore | undefined
  const memory = new MemoryStore({
    maxBytes: options.memoryMaxBytes,
    maxObjectBytes: options.memoryMaxObjectBytes,
    observer,
    onEvict: (object) => tiered?.demote(object),
  })
  tiered = new TieredStore({ memory, disk, observer })
  metrics.watchStore('memory', memory)
  metrics.watchStore('disk', disk)

  const upstream: Upstream = options.upstream ?? new HttpUpstream({ url: requireOrigin(options), ...options.upstreamTimeouts })
  if (upstream.health !== undefined) {
    const health = upstream.health.bind(upstream)
    metrics.watchUpstreams(() => health())
  }
  const cacheName = `streamedge-${options.id}`
  const forwarding = new Forwarding({ name: cacheName, trustedProxies: options.trustedProxies ?? [] })
  const gate = new AccessGate({ token: options.token, forwarding, metrics, logger, cacheName, now: options.now ?? Date.now })
  const controlPlaneUrl = options.controlPlane?.url
  // Keyed by the session's token, so both paths (node:http's requests, the fast path's) use this one rewrite.
  const steering = controlPlaneUrl === undefined ? undefined : steeringTransform(controlPlaneUrl, options.id, (token: string | undefined) => token)
  // Where tokens are required, playlists keep the token on their root-relative and same-host URIs (edge/hls/token-uris.ts).
  const rewriteFor = playlistRewrites({ carryToken: options.token?.required === true, steering })
  const proxy = new CacheProxy({
    cacheName,
    forwarding,
    ...(rewriteFor === undefined ? {} : { bodyTransform: (req, url) => rewriteFor(gate.tokenOf(req), url, req.headers.host) }),
    ...(options.contentPolicy === undefined ? {} : { contentPolicy: (proxy: CacheProxy) => options.contentPolicy!(proxy, metrics) }),
    store: tiered,
    upstream,
    metrics,
    logger,
    accessLog: options.accessLog,
    lockTimeoutMs: options.lockTimeoutMs,
    maxObjectBytes: options.maxObjectBytes,
    stripQueryParams: options.stripQueryParams,
    checkIntegrity: options.checkIntegrity,
    negativeTtlSeconds: options.negativeTtlSeconds,
    negativeTtlMaxSeconds: options.negativeTtlMaxSeconds,
    staleIfErrorSeconds: options.staleIfErrorSeconds,
    allowSetCookie: options.allowSetCookie,
    maxRanges: options.maxRanges,
    rangeMissOffsetBytes: options.rangeMissOffsetBytes,
    journal,
    ...(options.now === undefined ? {} : { now: options.now }),
  })
  const sendfile = options.sendfile ?? 'remote'
  const server = new NodeServer({
    listen: options.listen,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    handler: (req, res) => { if (gate.admit(req, res)) proxy.handle(req, res) },
    fastHandler: options.fastPath === false ? undefined : createFastHitHandler({ gate, proxy, rewriteFor }),
    sendFile: sendfile === 'off' ? undefined : zeroCopy?.sendHeadFile,
    sendFileTo: sendfile === 'remote' ? notLoopback : undefined,
    sendHeadBody: zeroCopy?.sendHeadBody,
    admin: createAdminHandler({ token: options.adminToken, proxy, logger }),
    ready: () => true,
    metrics: async () => ({ contentType: metrics.contentType, body: await metrics.render() }),
    keepAliveTimeoutMs: options.keepAliveTimeoutMs,
    headersTimeoutMs: options.headersTimeoutMs,
    logger,
    cacheName,
  })
  metrics.watchFastPath(() => server.fastPath)
  const { url, httpsUrl } = await server.listen()
  logger.info({ url, httpsUrl, cacheDir: options.cacheDir }, `${options.role} listening`)
  if (sendfile === 'on' && zeroCopyUnavailable !== undefined) {
    logger.warn({ reason: zeroCopyUnavailable }, 'server.sendfile is on but large hits are copied: no zero-copy sender')
  } else if (sendfile !== 'off' && zeroCopy !== undefined) {
    // which check guards the sends against disk reads: mincore on kernels before 6.5
    logger.info({ sendfile, pageCacheCheck: pageCacheCheck() }, `large hits leave from the page cache with sendfile(2)${sendfile === 'remote' ? ' to clients off this host' : ''}`)
  }
  const trimmer = new HeapTrimmer({ addon: heapTrim, intervalMs: options.mallocTrimIntervalMs ?? 0 })
  metrics.watchHeapTrimmer(trimmer)
  if (options.mallocTrimIntervalMs !== undefined && options.mallocTrimIntervalMs > 0 && heapTrimUnavailable !== undefined) {
    logger.warn({ reason: heapTrimUnavailable }, 'server.mallocTrimIntervalMs is set but the malloc heap is not trimmed: no native helper')
  }
  trimmer.start()
  const heartbeat = options.controlPlane?.heartbeatKey === undefined
    ? undefined
    : new HeartbeatClient({
      controlPlaneUrl: options.controlPlane.url,
      key: options.controlPlane.heartbeatKey,
      nodeId: options.id,
      role: options.role,
      intervalMs: options.controlPlane.heartbeatIntervalMs,
      logger,
      sample: () => ({
        ready: true,
        connections: server.connections,
        egressBytesTotal: proxy.servedBytesTotal,
        memoryFill: memory.sizeBytes / options.memoryMaxBytes,
        diskFill: disk.sizeBytes / options.diskMaxBytes,
      }),
    })
  heartbeat?.start()
  const store = tiered
  return {
    url,
    httpsUrl,
    metrics,
    store,
    proxy,
    logger,
    fastPathStats: () => server.fastPath,
    async close () {
      // Tell the control plane first, so new sessions go elsewhere while this node drains.
      await heartbeat?.stop()
      trimmer.stop()
      await server.close(options.shutdownGraceMs)
      await upstream.close()
      await store.close()
      logger.info('stopped')
      logger.flush()
    },
  }
}

function requireOrigin (options: CacheNodeOptions): string {
  if (options.origin === undefined) throw new TypeError('Expected options.origin (or options.upstream) to be set, got undefined')
  return options.origin
}
