/**
 * Composition root of the edge role: the only edge file that reads config.
 * Maps the validated config to cache-node options and starts the node.
 */
import { readFileSync } from 'node:fs'
import type { StreamedgeConfig } from '../config/params.ts'
import { createLogger, type Logger } from '../lib/log.ts'
import { tokenCheckFrom } from './auth/token-check.ts'
import { startCacheNode, type CacheNodeOptions, type RunningCacheNode } from './cache-node.ts'
import { HlsRuntime } from './hls/hls-runtime.ts'
import { UpstreamChain } from './proxy/upstream-chain.ts'
import { HttpUpstream } from './proxy/upstream.ts'

export interface StartEdgeOptions {
  /** Overrides the logger built from config (the demo gives each node a child logger). */
  readonly logger?: Logger
  readonly processMetrics?: boolean
}

/** Starts an edge from a validated config (its `edge.origin` must be set). */
export async function startEdge (config: Readonly<StreamedgeConfig>, options: StartEdgeOptions = {}): Promise<RunningCacheNode> {
  const edge = config.edge
  const origin = edge.origin
  if (origin === undefined) throw new TypeError('edge.origin is required: give --origin URL or set it in the config file')
  const logger = options.logger ?? createLogger({ level: config.log.level, bindings: { role: 'edge', node: edge.id } })
  const tls = edge.tls.listen === undefined || edge.tls.certFile === undefined || edge.tls.keyFile === undefined
    ? undefined
    : { listen: edge.tls.listen, cert: readFileSync(edge.tls.certFile), key: readFileSync(edge.tls.keyFile) }
  return await startWithHls(edge.hls, { nodeId: edge.id, logger, stripQueryParams: edge.cache.stripQueryParams }, (contentPolicy) => startCacheNode({
    ...contentPolicy,
    role: 'edge',
    id: edge.id,
    listen: edge.listen,
    ...(tls === undefined ? {} : { tls }),
    origin,
    ...(edge.shields.length === 0 ? {} : { upstream: shieldChain(edge, origin, logger) }),
    cacheDir: edge.cacheDir,
    memoryMaxBytes: edge.cache.memory.maxBytes,
    memoryMaxObjectBytes: edge.cache.memory.maxObjectBytes,
    diskMaxBytes: edge.cache.disk.maxBytes,
    diskFsync: edge.cache.disk.fsync,
    maxObjectBytes: edge.cache.maxObjectBytes,
    lockTimeoutMs: edge.cache.lockTimeoutMs,
    stripQueryParams: edge.cache.stripQueryParams,
    checkIntegrity: edge.cache.checkMpegTs,
    negativeTtlSeconds: edge.cache.negativeTtlSeconds,
    negativeTtlMaxSeconds: edge.cache.negativeTtlMaxSeconds,
    staleIfErrorSeconds: edge.cache.staleIfErrorSeconds,
    allowSetCookie: edge.cache.allowSetCookie,
    maxRanges: edge.cache.maxRanges,
    rangeMissOffsetBytes: edge.cache.rangeMissOffsetBytes,
    trustedProxies: edge.trustedProxies,
    ...tokenOptions(edge),
    ...(edge.controlPlane.url === undefined
      ? {}
      : { controlPlane: { url: edge.controlPlane.url, heartbeatKey: edge.controlPlane.heartbeatKey, heartbeatIntervalMs: edge.controlPlane.heartbeatIntervalMs } }),
    adminToken: edge.admin.token,
    upstreamTimeouts: {
      connectTimeoutMs: edge.upstream.connectTimeoutMs,
      firstByteTimeoutMs: edge.upstream.firstByteTimeoutMs,
      idleTimeoutMs: edge.upstream.idleTimeoutMs,
      connections: edge.upstream.connections,
      keepAliveTimeoutMs: edge.upstream.keepAliveTimeoutMs,
    },
    keepAliveTimeoutMs: edge.server.keepAliveTimeoutMs,
    headersTimeoutMs: edge.server.headersTimeoutMs,
    shutdownGraceMs: edge.server.shutdownGraceMs,
    fastPath: edge.server.fastPath,
    sendfile: edge.server.sendfile,
    mallocTrimIntervalMs: edge.server.mallocTrimIntervalMs,
    accessLog: config.log.access,
    logger,
    processMetrics: options.processMetrics ?? true,
  }))
}

/** The `hls` section of an edge or shield config (the rows are the same). */
export type HlsConfig = Readonly<StreamedgeConfig>['edge']['hls']

/**
 * Starts a cache node with the HLS layer from `config` (edge.hls or shield.hls): its
 * content policy goes into the node's options, and it stops before the node does.
 */
export async function startWithHls (
  config: HlsConfig,
  identity: { readonly nodeId: string, readonly logger: Logger, readonly stripQueryParams: readonly string[] },
  start: (extra: Pick<CacheNodeOptions, 'contentPolicy'>) => Promise<RunningCacheNode>,
): Promise<RunningCacheNode> {
  if (!config.enabled) return await start({})
  const hls = new HlsRuntime({
    ...identity,
    policy: {
      liveLifetimeFraction: config.liveLifetimePercent / 100,
      refreshAheadFraction: config.refreshAheadPercent / 100,
      notPublishedFraction: config.notPublishedPercent / 100,
      immutableLifetimeSeconds: config.immutableLifetimeSeconds,
      masterLifetimeSeconds: config.masterLifetimeSeconds,
      partLifetimeParts: config.partLifetimeParts,
      regressionHoldTargetDurations: config.regressionHoldTargetDurations,
    },
    index: { maxRenditions: config.index.maxRenditions, maxSegments: config.index.maxSegments },
    prefetch: { ...config.prefetch },
    prefill: { defaultBytesPerSecond: config.prefill.bytesPerSecond, defaultConcurrency: config.prefill.concurrency },
  })
  const node = await start({ contentPolicy: hls.contentPolicyFor })
  hls.attach(node)
  return {
    ...node,
    async close () {
      await hls.close()
      await node.close()
    },
  }
}

/**
 * Edge → shields (by cache key) → origin, when `edge.shields` is set. Every upstream gets the
 * edge.upstream.* settings, except that a shield has edge.shield.firstByteTimeoutMs for its
 * response head: it answers a miss only after its own origin attempts (failover, stale).
 */
function shieldChain (edge: Readonly<StreamedgeConfig>['edge'], origin: string, logger: Logger): UpstreamChain {
  const http = (url: string): HttpUpstream => new HttpUpstream({ url, ...edge.upstream })
  return new UpstreamChain({
    // The URL as configured is the ring id, so every edge listing the same shields ranks keys the same way.
    shields: edge.shields.map((url) => ({
      id: url,
      upstream: new HttpUpstream({ url, ...edge.upstream, firstByteTimeoutMs: edge.shield.firstByteTimeoutMs }),
      // Probes get their own connection so they never wait behind a busy traffic pool.
      ...(edge.shield.probe.intervalMs === 0 ? {} : { probeUpstream: new HttpUpstream({ url, ...edge.upstream, connections: 1 }) }),
    })),
    origin: http(origin),
    allowDirectOrigin: edge.allowDirectOrigin,
    breaker: { ...edge.shield.breaker },
    probe: edge.shield.probe.intervalMs === 0 ? undefined : { ...edge.shield.probe },
    logger,
  })
}

/** Playback-token checking from `edge.token.*`. */
function tokenOptions (edge: Readonly<StreamedgeConfig>['edge']): Pick<CacheNodeOptions, 'token'> {
  const token = tokenCheckFrom('edge', edge.token, edge.trustedProxies)
  return token === undefined ? {} : { token }
}
