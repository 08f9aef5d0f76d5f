/**
 * Composition root of the control-plane role: the only control-plane file that reads config.
 * Maps the validated `controlPlane` section to options and starts the control plane: in this
 * process, or (`controlPlane.workers` > 1) as a cluster of worker processes (cluster.ts).
 */
import { fstatSync } from 'node:fs'
import type { StreamedgeConfig } from '../config/params.ts'
import { CdnError } from '../lib/errors.ts'
import { createLogger, type Logger } from '../lib/log.ts'
import { parseTokenKeys } from '../lib/protocol/token.ts'
import { isControlPlaneWorker, joinControlPlaneCluster, startControlPlaneCluster } from './cluster.ts'
import { startControlPlaneNode, type ControlPlaneOptions, type ControlPlanePeers, type RunningControlPlane } from './control-plane.ts'
import { parseLatLon } from './geo/great-circle.ts'

/** Options of {@link startControlPlane} that are not config. */
export interface StartControlPlaneOptions {
  /** Overrides the logger built from config (the demo gives each role a child logger). */
  readonly logger?: Logger
  readonly processMetrics?: boolean
  /** Wall clock (tests). */
  readonly now?: () => number
  /** The cluster this process is a worker of ({@link runControlPlane} sets it). */
  readonly peers?: ControlPlanePeers
}

/** What `streamedge control-plane` keeps running until a signal: a control plane or a cluster's primary. */
export interface ControlPlaneRole {
  readonly url: string
  close (): Promise<void>
}

/**
 * Runs the role as `streamedge control-plane` does: one control plane in this process when
 * `controlPlane.workers` is 1; otherwise this process becomes the cluster's primary (it
 * checks the config first, so mistakes are reported once) and the processes it forks come
 * back here as workers, each running {@link startControlPlane} with the cluster's relay.
 */
export async function runControlPlane (config: Readonly<StreamedgeConfig>): Promise<ControlPlaneRole> {
  const cp = config.controlPlane
  if (isControlPlaneWorker()) {
    const member = joinControlPlaneCluster()
    const logger = createLogger({ level: config.log.level, sharedStdout: !stdoutIsFile(), bindings: { role: 'control-plane', node: cp.id, worker: member.slot } })
    let running: RunningControlPlane
    try {
      running = await startControlPlane(config, { logger, peers: member.peers })
    } catch (err) {
      return await member.failed(err)
    }
    member.closeWith(() => running.close())
    member.ready(running.url)
    return running
  }
  if (cp.workers <= 1) return await startControlPlane(config)
  // the primary writes to the stdout its workers inherit
  const logger = createLogger({ level: config.log.level, sharedStdout: !stdoutIsFile(), bindings: { role: 'control-plane', node: cp.id } })
  controlPlaneOptions(config, { logger })
  return await startControlPlaneCluster({ workers: cp.workers, id: cp.id, logger })
}

/** Starts a control plane from a validated config (`controlPlane.nodesFile` and `controlPlane.tokenKeys` must be set). */
export async function startControlPlane (config: Readonly<StreamedgeConfig>, options: StartControlPlaneOptions = {}): Promise<RunningControlPlane> {
  const mapped = controlPlaneOptions(config, options)
  return await asConfigErrorAsync(() => startControlPlaneNode(mapped))
}

/** Checks the config and maps it to {@link ControlPlaneOptions} (nothing is opened yet). */
function controlPlaneOptions (config: Readonly<StreamedgeConfig>, options: StartControlPlaneOptions): ControlPlaneOptions {
  const cp = config.controlPlane
  if (cp.nodesFile === undefined) throw invalid('controlPlane.nodesFile is required: give --nodes FILE or set it in the config file')
  if (cp.tokenKeys === undefined || cp.tokenKeys.length === 0) throw invalid('controlPlane.tokenKeys is required: give --controlPlane.tokenKeys KID:SECRET or set it in the config file')
  const tokenKeys = asConfigError(() => parseTokenKeys(cp.tokenKeys ?? [], 'controlPlane.tokenKeys'))
  const point = cp.unknownGeo.point === undefined ? undefined : parseLatLon(cp.unknownGeo.point)
  if (cp.unknownGeo.point !== undefined && point === undefined) throw invalid(`controlPlane.unknownGeo.point must be LAT,LON within -90..90 and -180..180, got ${JSON.stringify(cp.unknownGeo.point)}`)
  if (cp.unknownGeo.policy === 'nearest-point' && point === undefined) throw invalid('controlPlane.unknownGeo.point is required by controlPlane.unknownGeo.policy nearest-point')
  const logger = options.logger ?? createLogger({ level: config.log.level, bindings: { role: 'control-plane', node: cp.id } })
  return {
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
    ...(options.peers === undefined ? {} : { peers: options.peers }),
  }
}

/**
 * Whether stdout is a regular file: the cluster processes' writes to it never interleave (they share
 * one open file, whose position Linux locks per write), so they need no PIPE_BUF-sized writes.
 */
function stdoutIsFile (): boolean {
  try {
    return fstatSync(1).isFile()
  } catch {
    return false
  }
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
