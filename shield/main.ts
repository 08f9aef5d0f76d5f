/**
 * Composition root of the shield role: the only shield file that reads config. A shield is
 * the same cache engine as an edge (memory + disk, shared fills, ranges, RFC 9111) with an
 * OriginPool as its upstream: origins per path prefix with priority failover, a concurrency
 * cap and queue per origin, breakers and optional probes. SIGHUP re-reads the origins file,
 * when there is one (the daemon convention, as nginx reloads its config on it).
 */
import type { StreamedgeConfig } from '../config/params.ts'
import { CdnError } from '../lib/errors.ts'
import { createLogger, type Logger } from '../lib/log.ts'
import { CounterFamily } from '../lib/metrics.ts'
import { tokenCheckFrom } from '../edge/auth/token-check.ts'
import { startCacheNode, type CacheNodeOptions, type RunningCacheNode } from '../edge/cache-node.ts'
import { startWithHls } from '../edge/main.ts'
import { OriginPool, type OriginSpec, type OriginTableChange } from './origin-pool.ts'
import { loadOriginsFile, originsFromList } from './origins-file.ts'

export interface StartShieldOptions {
  /** Overrides the logger built from config (the demo gives each node a child logger). */
  readonly logger?: Logger
  readonly processMetrics?: boolean
  /**
   * Call {@link RunningShield.reloadOrigins} on SIGHUP when `shield.originsFile` is set (default
   * true; without a file SIGHUP keeps its default action). The listener goes away at close.
   */
  readonly reloadOnSighup?: boolean
}

/** A running shield: a cache node whose origin table can be reloaded. */
export interface RunningShield extends RunningCacheNode {
  /**
   * Re-reads `shield.originsFile` and, when it is valid, swaps in its table (requests in flight
   * finish on the origin they started on); a broken file keeps the current table and logs one
   * error. What SIGHUP does. True when the new table was taken.
   */
  reloadOrigins (): boolean
}

/** Starts a shield from a validated config (`shield.origins` or `shield.originsFile` must be set). */
export async function startShield (config: Readonly<StreamedgeConfig>, options: StartShieldOptions = {}): Promise<RunningShield> {
  const shield = config.shield
  const logger = options.logger ?? createLogger({ level: config.log.level, bindings: { role: 'shield', node: shield.id } })
  const pool = new OriginPool({
    origins: shieldOrigins(config),
    timeouts: {
      connectTimeoutMs: shield.origin.connectTimeoutMs,
      firstByteTimeoutMs: shield.origin.firstByteTimeoutMs,
      idleTimeoutMs: shield.origin.idleTimeoutMs,
      keepAliveTimeoutMs: shield.origin.keepAliveTimeoutMs,
    },
    maxConcurrent: shield.origin.maxConcurrent,
    maxQueue: shield.origin.maxQueue,
    queueTimeoutMs: shield.origin.queueTimeoutMs,
    retryAfterSeconds: shield.origin.retryAfterSeconds,
    retries: shield.origin.retries,
    breaker: { ...shield.origin.breaker },
    probe: shield.origin.probe.intervalMs === 0 ? undefined : { ...shield.origin.probe },
    logger,
  })
  let node: RunningCacheNode
  try {
    // The same live-playlist rules as the edges, so a shield never hands them a playlist older than it should.
    node = await startWithHls(shield.hls, { nodeId: shield.id, logger, stripQueryParams: shield.cache.stripQueryParams }, (contentPolicy) => startCacheNode({
      ...contentPolicy,
      role: 'shield',
      id: shield.id,
      listen: shield.listen,
      upstream: pool,
      cacheDir: shield.cacheDir,
      memoryMaxBytes: shield.cache.memory.maxBytes,
      memoryMaxObjectBytes: shield.cache.memory.maxObjectBytes,
      diskMaxBytes: shield.cache.disk.maxBytes,
      diskFsync: shield.cache.disk.fsync,
      maxObjectBytes: shield.cache.maxObjectBytes,
      lockTimeoutMs: shield.cache.lockTimeoutMs,
      stripQueryParams: shield.cache.stripQueryParams,
      checkIntegrity: shield.cache.checkMpegTs,
      negativeTtlSeconds: shield.cache.negativeTtlSeconds,
      negativeTtlMaxSeconds: shield.cache.negativeTtlMaxSeconds,
      staleIfErrorSeconds: shield.cache.staleIfErrorSeconds,
      allowSetCookie: shield.cache.allowSetCookie,
      maxRanges: shield.cache.maxRanges,
      rangeMissOffsetBytes: shield.cache.rangeMissOffsetBytes,
      trustedProxies: shield.trustedProxies,
      ...tokenOptions(shield),
      adminToken: shield.admin.token,
      // The pool builds its own connections; these only satisfy the shared options shape.
      upstreamTimeouts: {
        connectTimeoutMs: shield.origin.connectTimeoutMs,
        firstByteTimeoutMs: shield.origin.firstByteTimeoutMs,
        idleTimeoutMs: shield.origin.idleTimeoutMs,
        connections: shield.origin.maxConcurrent,
        keepAliveTimeoutMs: shield.origin.keepAliveTimeoutMs,
      },
      keepAliveTimeoutMs: shield.server.keepAliveTimeoutMs,
      headersTimeoutMs: shield.server.headersTimeoutMs,
      shutdownGraceMs: shield.server.shutdownGraceMs,
      fastPath: shield.server.fastPath,
      sendfile: shield.server.sendfile,
      mallocTrimIntervalMs: shield.server.mallocTrimIntervalMs,
      accessLog: config.log.access,
      logger,
      processMetrics: options.processMetrics ?? true,
    }))
  } catch (err) {
    await pool.close()
    throw err
  }
  const reloadOrigins = originsReloader(shield.originsFile, pool, node, logger)
  const onSighup = (): void => { reloadOrigins() }
  if ((options.reloadOnSighup ?? true) && shield.originsFile !== undefined) process.on('SIGHUP', onSighup)
  return {
    ...node,
    reloadOrigins,
    async close () {
      process.off('SIGHUP', onSighup)
      await node.close()
    },
  }
}

/**
 * The reload behind SIGHUP: the whole file is validated (entries, then the table) before the
 * pool swaps tables, so a half-edited file changes nothing. Counted in
 * `streamedge_reloads_total{file="origins"}`, as the control plane counts its file reloads.
 */
function originsReloader (file: string | undefined, pool: OriginPool, node: RunningCacheNode, logger: Logger): () => boolean {
  const reloads = new CounterFamily(node.metrics.registry, 'streamedge_reloads_total', 'Reloads of shield.originsFile (SIGHUP), by file (origins) and outcome (ok, refused)', ['file', 'outcome'])
  return () => {
    if (file === undefined) {
      logger.warn('reload asked for, but shield.originsFile is not set (the origins come from shield.origins): nothing to reload')
      return false
    }
    let change: OriginTableChange
    try {
      change = pool.replaceOrigins(loadOriginsFile(file))
    } catch (err) {
      reloads.inc({ file: 'origins', outcome: 'refused' })
      logger.error({ file, err: { message: err instanceof Error ? err.message : String(err) } }, 'origins file refused; keeping the current origins')
      return false
    }
    reloads.inc({ file: 'origins', outcome: 'ok' })
    logger.info({ file, added: change.added, removed: change.removed, kept: change.kept }, 'origins file reloaded')
    return true
  }
}

/** Playback-token checking from `shield.token.*` (tokenless requests from shield.trustedProxies, the edges, pass). */
function tokenOptions (shield: Readonly<StreamedgeConfig>['shield']): Pick<CacheNodeOptions, 'token'> {
  const token = tokenCheckFrom('shield', shield.token, shield.trustedProxies)
  return token === undefined ? {} : { token }
}

/** The origin table from `shield.originsFile`, or the quick-start `shield.origins` list (one prefix `/`, priority order). */
export function shieldOrigins (config: Readonly<StreamedgeConfig>): OriginSpec[] {
  const { origins, originsFile } = config.shield
  if (originsFile !== undefined) {
    if (origins !== undefined && origins.length > 0) throw new CdnError('CDN_ERR_CONFIG_INVALID', 'Set shield.origins or shield.originsFile, not both')
    return loadOriginsFile(originsFile)
  }
  if (origins === undefined || origins.length === 0) {
    throw new CdnError('CDN_ERR_CONFIG_INVALID', 'shield.origins is required: give --origin URL[,URL...] (priority order) or set shield.originsFile in the config file')
  }
  return originsFromList(origins)
}
