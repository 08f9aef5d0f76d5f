/**
 * Composition root of the control-plane role: the only control-plane file that reads config.
 * Maps the validated `controlPlane` section to options and starts the control plane.
 */
import type { StreamedgeConfig } from '../config/params.ts'
import { CdnError } from '../lib/errors.ts'
import { createLogger, type Logger } from '../lib/log.ts'
import { parseTokenKeys } from '../lib/protocol/token.ts'
import { startControlPlaneNode, type RunningControlPlane } from './control-plane.ts'
import { parseLatLon } from './geo/great-circle.ts'

/** Options of {@link startControlPlane} that are not config. */
export interface StartControlPlaneOptions {
  /** Overrides the logger built from config (the demo gives each role a child logger). */
  readonly logger?: Logger
  readonly processMetrics?: boolean
  /** Wall clock (tests). */
  readonly now?: () => number
}

/** Starts a control plane from a validated config (`controlPlane.nodesFile` and `controlPlane.tokenKeys` must be set). */
export async function startControlPlane (config: Readonly<StreamedgeConfig>, options: StartControlPlaneOptions = {}): Promise<RunningControlPlane> {
  const cp = config.controlPlane
  if (cp.nodesFile === undefined) throw invalid('controlPlane.nodesFile is required: give --nodes FILE or set it in the config file')
  if (cp.tokenKeys === undefined || cp.tokenKeys.length === 0) throw invalid('controlPlane.tokenKeys is required: give --controlPlane.tokenKeys KID:SECRET or set it in the config file')
  const tokenKeys = asConfigError(() => parseTokenKeys(cp.tokenKeys ?? [], 'controlPlane.tokenKeys'))
  const point = cp.unknownGeo.point === undefined ? undefined : parseLatLon(cp.unknownGeo.point)
  if (cp.unknownGeo.point !== undefined && point === undefined) throw invalid(`controlPlane.unknownGeo.point must be LAT,LON within -90..90 and -180..180, got ${JSON.stringify(cp.unknownGeo.point)}`)
  if (cp.unknownGeo.policy === 'nearest-point' && point === undefined) throw invalid('controlPlane.unknownGeo.point is required by controlPlane.unknownGeo.policy nearest-point')
  const logger = options.logger ?? createLogger({ level: config.log.level, bindings: { role: 'control-plane', node: cp.id } })
  return await asConfigErrorAsync(() => startControlPlaneNode({
    id: cp.id,
    listen: cp.listen,
    publicUrl: cp.publicUrl,
    nodesFile: cp.nodesFile as string,
    licensingFile: cp.licensingFile,
    coverageZonesFile: cp.coverageZonesFile,
    geoipFiles: cp.geoip.databases,
    trustedProxies: cp.trustedProxies,
    tokenKeys,
    tokenActiveKid: cp.tokenActiveKid,
    tokenTtlSeconds: cp.tokenTtlSeconds,
    tokenBindIp: cp.tokenBindIp,
    heartbeatKey: cp.heartbeatKey,
    heartbeatTimeoutMs: cp.heartbeatTimeoutMs,
    probe: {
      path: cp.probe.path,
      intervalMs: cp.probe.intervalMs,
      timeoutMs: cp.probe.timeoutMs,
      failThreshold: cp.probe.failThreshold,
      riseThreshold: cp.probe.riseThreshold,
    },
    unknownGeo: { policy: cp.unknownGeo.policy as 'default-group' | 'nearest-point' | 'deny', group: cp.unknownGeo.group, point },
    steering: {
      manifestTtlSeconds: cp.steering.manifestTtlSeconds,
      maxPathways: cp.steering.maxPathways,
      overloadPercent: cp.steering.overloadPercent,
      balanceSlackPercent: cp.steering.balanceSlackPercent,
      decisionCacheTtlMs: cp.steering.decisionCacheTtlMs,
      decisionCacheMaxEntries: cp.steering.decisionCacheMaxEntries,
    },
    adminToken: cp.adminToken,
    purge: { nodeToken: cp.purge.nodeToken, timeoutMs: cp.purge.timeoutMs },
    inventory: { intervalMs: cp.inventory.intervalMs, maxAgeMs: cp.inventory.maxAgeMs },
    reloadIntervalMs: cp.reloadIntervalMs,
    accessLog: config.log.access,
    logger,
    processMetrics: options.processMetrics ?? true,
    ...(options.now === undefined ? {} : { now: options.now }),
  }))
}

function invalid (message: string): CdnError {
  return new CdnError('CDN_ERR_CONFIG_INVALID', `Invalid config: ${message}`)
}

/** Option errors (TypeError naming the field) become config errors, so the CLI reports them as such. */
function asConfigError<T> (fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    if (err instanceof TypeError) throw invalid(err.message)
    throw err
  }
}

async function asConfigErrorAsync<T> (fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof TypeError) throw invalid(err.message)
    throw err
  }
}
