/**
 * A running control plane: data files, GeoIP, health, steering and the HTTP server wired
 * together from an options object. control-plane/main.ts builds the options from config;
 * tests and the demo may build them directly.
 *
 * Instances are stateless replicas: each reads the same files and keeps its own health view
 * (design.md §4), so running several behind one name needs nothing shared. The processes of
 * one instance's cluster (control-plane/cluster.ts) share theirs through {@link ControlPlanePeers}.
 */
import { ControlPlaneMetrics, type MetricsSnapshot } from '../lib/metrics.ts'
import { createLogger, type Logger } from '../lib/log.ts'
import type { NodeReport } from '../lib/protocol/node-report.ts'
import { TokenSigner, TokenVerifier, type TokenKey } from '../lib/protocol/token.ts'
import { WatchedFile } from './data-file.ts'
import { ClientIpResolver } from './geo/client-ip.ts'
import { CoverageZones, loadCoverageZones } from './geo/coverage-zones.ts'
import { GeoIpDatabase } from './geo/geoip.ts'
import type { LatLon } from './geo/great-circle.ts'
import { Locator, type UnknownGeoPolicy } from './geo/locator.ts'
import { HealthTracker, type HealthChange } from './health/health-tracker.ts'
import { loadInventory, type Inventory } from './health/node-inventory.ts'
import { Prober } from './health/prober.ts'
import { LicensingRules, loadLicensingRules } from './licensing/licensing-rules.ts'
import { ControlPlaneServer } from './server.ts'
import { TitleInventory } from './title-inventory.ts'
import { DecisionCache } from './steering/decision-cache.ts'
import type { SteeringPlan } from './steering/selector.ts'
import { SteeringService } from './steering/steering-service.ts'

/** What to do with clients nothing locates (`group` and `point` as the policy needs). */
export interface UnknownGeoOptions {
  readonly policy: 'default-group' | 'nearest-point' | 'deny'
  /** For `default-group`; the first group with edges (not zone-only) of the inventory when unset. */
  readonly group?: string | undefined
  /** For `nearest-point`. */
  readonly point?: LatLon | undefined
}

/**
 * The other processes of a control-plane cluster (control-plane/cluster.ts), so every worker
 * steers from one health view and /metrics shows the whole cluster. Absent: a lone process.
 */
export interface ControlPlanePeers {
  /** Whether this process runs the periodic probes (one worker does and relays the results). */
  readonly prober: boolean
  /** A heartbeat this process accepted (signature verified) at `receivedAtMs`, for the others to record. */
  shareHeartbeat (report: NodeReport, receivedAtMs: number): void
  /** A result of this process's periodic probes, for the others to record. */
  shareProbe (id: string, ok: boolean, detail: string | undefined): void
  /** What to do with a heartbeat another process accepted. */
  onPeerHeartbeat (handler: (report: NodeReport, receivedAtMs: number) => void): void
  /** What to do with another process's probe result. */
  onPeerProbe (handler: (id: string, ok: boolean, detail: string | undefined) => void): void
  /** This process's metrics, which the cluster's /metrics merges. */
  provideMetrics (source: () => Promise<MetricsSnapshot>): void
  /** The whole cluster's /metrics text. */
  renderMetrics (): Promise<string>
}

/** Everything a control plane needs. */
export interface ControlPlaneOptions {
  readonly id: string
  readonly listen: { readonly host: string, readonly port: number }
  /** Base URL players reach this control plane at (RELOAD-URI); the request's Host when unset. */
  readonly publicUrl?: string | undefined
  readonly nodesFile: string
  readonly licensingFile?: string | undefined
  readonly coverageZonesFile?: string | undefined
  /** GeoIP City MMDB files, consulted in order; none means every client is of unknown location. */
  readonly geoipFiles: readonly string[]
  readonly trustedProxies: readonly string[]
  readonly tokenKeys: readonly TokenKey[]
  readonly tokenActiveKid?: string | undefined
  readonly tokenTtlSeconds: number
  readonly tokenBindIp: boolean
  readonly heartbeatKey?: string | undefined
  readonly heartbeatTimeoutMs: number
  readonly probe: {
    readonly path: string
    readonly intervalMs: number
    readonly timeoutMs: number
    readonly failThreshold: number
    readonly riseThreshold: number
  }
  readonly unknownGeo: UnknownGeoOptions
  readonly steering: {
    readonly manifestTtlSeconds: number
    readonly maxPathways: number
    readonly overloadPercent: number
    readonly balanceSlackPercent: number
    readonly decisionCacheTtlMs: number
    readonly decisionCacheMaxEntries: number
  }
  readonly adminToken?: string | undefined
  readonly purge: { readonly nodeToken?: string | undefined, readonly timeoutMs: number }
  /**
   * Title inventories (control-plane/title-inventory.ts): nodes are polled every
   * `intervalMs` (0: never; prefill fan-out still works) with the purge token and timeout,
   * and steering prefers nodes holding the title; reports older than `maxAgeMs` are ignored.
   */
  readonly inventory?: { readonly intervalMs: number, readonly maxAgeMs: number }
  /** How often watched files are polled for changes (ms); 0 turns reloading off. */
  readonly reloadIntervalMs: number
  readonly accessLog: boolean
  readonly logger?: Logger
  readonly processMetrics?: boolean
  readonly now?: () => number
  /** The cluster this process is a worker of (control-plane/cluster.ts); none for a lone process. */
  readonly peers?: ControlPlanePeers | undefined
}

/** A started control plane. */
export interface RunningControlPlane {
  readonly url: string
  readonly metrics: ControlPlaneMetrics
  readonly health: HealthTracker
  readonly logger: Logger
  /** What every node holds (polled), and prefill fan-out. */
  readonly titles: TitleInventory
  /** Runs one probe round now (tests, and the first round before listening). */
  probeNow (): Promise<void>
  /** Graceful stop. */
  close (): Promise<void>
}

/** Defaults for everything but identity, addresses and files (tests and the demo use them). */
export const CONTROL_PLANE_DEFAULTS = {
  trustedProxies: [],
  tokenTtlSeconds: 14_400,
  tokenBindIp: false,
  heartbeatTimeoutMs: 15_000,
  probe: { path: '/readyz', intervalMs: 3000, timeoutMs: 2000, failThreshold: 2, riseThreshold: 2 },
  unknownGeo: { policy: 'default-group' },
  steering: { manifestTtlSeconds: 30, maxPathways: 4, overloadPercent: 90, balanceSlackPercent: 25, decisionCacheTtlMs: 10_000, decisionCacheMaxEntries: 100_000 },
  purge: { timeoutMs: 5000 },
  inventory: { intervalMs: 30_000, maxAgeMs: 120_000 },
  reloadIntervalMs: 2000,
  accessLog: true,
} as const satisfies Partial<ControlPlaneOptions>

/** Builds and starts a control plane: loads every file, probes every node once, then listens. */
export async function startControlPlaneNode (options: ControlPlaneOptions): Promise<RunningControlPlane> {
  const logger = options.logger ?? createLogger({ bindings: { role: 'control-plane', node: options.id } })
  const metrics = new ControlPlaneMetrics({ node: options.id, processMetrics: options.processMetrics ?? false })
  const now = options.now ?? Date.now
  const closers: Array<() => void | Promise<void>> = []
  try {
    return await start(options, logger, metrics, now, closers)
  } catch (err) {
    for (const close of closers.reverse()) await close()
    throw err
  }
}

async function start (
  options: ControlPlaneOptions, logger: Logger, metrics: ControlPlaneMetrics, now: () => number, closers: Array<() => void | Promise<void>>
): Promise<RunningControlPlane> {
  const signer = new TokenSigner(options.tokenKeys, options.tokenActiveKid)
  const verifier = new TokenVerifier(options.tokenKeys)
  const clientIp = new ClientIpResolver(options.trustedProxies, 'trustedProxies')
  const cache = new DecisionCache<SteeringPlan>({ ttlMs: options.steering.decisionCacheTtlMs, maxEntries: options.steering.decisionCacheMaxEntries })
  closers.push(() => cache.close())
  let steering: SteeringService | undefined
  const reloaded = (file: ReloadedFile) => (ok: boolean): void => {
    metrics.reloads.inc({ file, outcome: ok ? 'ok' : 'refused' })
    if (!ok) return
    const stale = RELOAD_MAKES_STALE[file]
    if (stale.plans) void cache.clear()
    if (stale.locations) steering?.invalidate() // a prefix may now locate elsewhere
  }
  let health: HealthTracker | undefined
  const inventoryFile = new WatchedFile<Inventory>({
    path: options.nodesFile,
    what: 'nodes',
    load: loadInventory,
    watchIntervalMs: options.reloadIntervalMs,
    onChange: (inventory) => health?.setInventory(inventory),
    onReload: reloaded('nodes'),
    logger,
  })
  closers.push(() => inventoryFile.close())
  const licensing = options.licensingFile === undefined
    ? undefined
    : new WatchedFile<LicensingRules>({ path: options.licensingFile, what: 'licensing', load: loadLicensingRules, watchIntervalMs: options.reloadIntervalMs, onChange: () => {}, onReload: reloaded('licensing'), logger })
  if (licensing !== undefined) closers.push(() => licensing.close())
  const zones = options.coverageZonesFile === undefined
    ? undefined
    : new WatchedFile<CoverageZones>({ path: options.coverageZonesFile, what: 'coverage zones', load: loadCoverageZones, watchIntervalMs: options.reloadIntervalMs, onChange: () => {}, onReload: reloaded('coverage-zones'), logger })
  if (zones !== undefined) closers.push(() => zones.close())
  checkZoneGroups(zones?.value, inventoryFile.value, logger)

  const geoip = options.geoipFiles.length === 0
    ? undefined
    : await GeoIpDatabase.open({ files: options.geoipFiles, watchIntervalMs: options.reloadIntervalMs, cacheEntries: GEOIP_CACHE_ENTRIES, logger, onReload: (_file, ok) => reloaded('geoip')(ok) })
  if (geoip !== undefined) closers.push(() => geoip.close())
  logger.info({ geoip: geoip?.describe() ?? [] }, geoip === undefined ? 'no GeoIP database: every client is of unknown location' : 'GeoIP databases open')

  const tracker = new HealthTracker({
    inventory: inventoryFile.value,
    failThreshold: options.probe.failThreshold,
    riseThreshold: options.probe.riseThreshold,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs,
    overloadRatio: options.steering.overloadPercent / 100,
    assignWindowMs: Math.max(1000, options.heartbeatTimeoutMs),
    now,
    onChange: (change: HealthChange) => {
      const level = change.to === 'available' || change.from === 'unknown' ? 'info' : 'warn'
      logger[level]({ target: change.id, from: change.from, to: change.to, detail: change.detail }, 'node health changed')
      metrics.healthChanges.inc({ target: change.id, status: change.to })
      void cache.clear()
    },
  })
  health = tracker
  metrics.watchNodes(() => tracker.views().map((h) => {
    const spec = inventoryFile.value.byId.get(h.id)
    return { id: h.id, group: spec?.group ?? '', status: h.status, heartbeatAgeSeconds: h.lastHeartbeatAtMs === undefined ? undefined : (now() - h.lastHeartbeatAtMs) / 1000 }
  }))
  const peers = options.peers
  peers?.onPeerHeartbeat((report, receivedAtMs) => { tracker.recordHeartbeat(report, receivedAtMs) })
  peers?.onPeerProbe((id, ok, detail) => tracker.recordProbe(id, ok, detail))
  peers?.provideMetrics(() => metrics.snapshot())
  const staleness = setInterval(() => tracker.evaluate(), Math.max(100, Math.min(1000, Math.floor(options.heartbeatTimeoutMs / 4))))
  staleness.unref()
  closers.push(() => clearInterval(staleness))

  let ready = false
  const prober = new Prober({
    nodes: () => inventoryFile.value.nodes,
    path: options.probe.path,
    intervalMs: options.probe.intervalMs,
    timeoutMs: options.probe.timeoutMs,
    onResult: (id, ok, detail) => {
      metrics.probes.inc({ target: id, outcome: ok ? 'ok' : 'failed' })
      tracker.recordProbe(id, ok, detail)
      // every worker probes once before listening; after that only the prober does, for all
      if (ready && peers?.prober === true) peers.shareProbe(id, ok, detail)
    },
  })
  closers.push(() => prober.stop())

  const locator = new Locator({
    zones: () => zones?.value ?? EMPTY_ZONES,
    geoip,
    unknown: unknownPolicy(options.unknownGeo, inventoryFile.value),
  })
  const titles = new TitleInventory({
    nodes: () => inventoryFile.value.nodes,
    tokenFor: (node) => node.adminToken ?? options.purge.nodeToken,
    intervalMs: options.inventory?.intervalMs ?? 0,
    timeoutMs: options.purge.timeoutMs,
    maxAgeMs: options.inventory?.maxAgeMs ?? 0,
    logger,
    onPoll: (target, ok) => metrics.inventoryPolls.inc({ target, outcome: ok ? 'ok' : 'failed' }),
    now,
  })
  closers.push(() => titles.stop())
  steering = new SteeringService({
    holders: (title) => titles.holders(title),
    inventory: () => inventoryFile.value,
    licensing: () => licensing?.value ?? NO_RULES,
    health: tracker,
    locator,
    cache,
    signer,
    verifier,
    tokenTtlSeconds: options.tokenTtlSeconds,
    bindIp: options.tokenBindIp,
    slack: options.steering.balanceSlackPercent / 100,
    manifestTtlSeconds: options.steering.manifestTtlSeconds,
    maxPathways: options.steering.maxPathways,
    now,
  })

  // One probe round before taking traffic, so the first decisions already know who is up.
  await prober.probeAll()
  if (peers === undefined || peers.prober) prober.start()
  const server = new ControlPlaneServer({
    listen: options.listen,
    steering,
    clientIp,
    health: tracker,
    inventory: () => inventoryFile.value,
    metrics,
    logger,
    accessLog: options.accessLog,
    heartbeatKey: options.heartbeatKey,
    adminToken: options.adminToken,
    purgeNodeToken: options.purge.nodeToken,
    purgeTimeoutMs: options.purge.timeoutMs,
    titles,
    publicUrl: options.publicUrl,
    ready: () => ready,
    now,
    ...(peers === undefined
      ? {}
      : {
          onHeartbeat: (report: NodeReport) => peers.shareHeartbeat(report, tracker.view(report.id)?.lastHeartbeatAtMs ?? now()),
          renderMetrics: () => peers.renderMetrics(),
        }),
  })
  const url = await server.listen()
  closers.push(() => server.close())
  metrics.watchFastPath(() => server.fastPath)
  titles.start()
  ready = true
  const available = tracker.views().filter((h) => h.status === 'available').length
  // A cluster's primary prints the one "control plane listening" line once every worker is up.
  logger.info({ url, nodes: inventoryFile.value.nodes.length, available, activeKid: signer.activeKid }, peers === undefined ? 'control plane listening' : 'control plane worker ready')
  let closed = false
  return {
    url,
    metrics,
    health: tracker,
    logger,
    titles,
    probeNow: () => prober.probeAll(),
    async close () {
      if (closed) return
      closed = true
      ready = false
      for (const close of [...closers].reverse()) await close()
      logger.info('stopped')
      logger.flush()
    },
  }
}

/** A watched data source (the `file` label of the reload metric). */
export type ReloadedFile = 'nodes' | 'licensing' | 'coverage-zones' | 'geoip'

/**
 * What a good reload of each source makes stale: the decision cache's plans, and the steering
 * service's memoized client locations (with their group orders). Locations follow only the
 * zones and the GeoIP data (inventory changes are caught by the steering service itself).
 * Licensing leaves both alone: no cached plan, location or token depends on the rules, every
 * decision evaluates the current ones, and a reload makes a new LicensingRules whose
 * directory memo starts empty.
 */
export const RELOAD_MAKES_STALE: Readonly<Record<ReloadedFile, { readonly plans: boolean, readonly locations: boolean }>> = {
  nodes: { plans: true, locations: false },
  licensing: { plans: false, locations: false },
  'coverage-zones': { plans: true, locations: true },
  geoip: { plans: true, locations: true },
}

const EMPTY_ZONES = CoverageZones.empty()
/** Decoded GeoIP records kept per file (maxmind's LRU, keyed by record): a few MB for 100k. */
const GEOIP_CACHE_ENTRIES = 100_000
const NO_RULES = LicensingRules.empty()

function unknownPolicy (options: UnknownGeoOptions, inventory: Inventory): UnknownGeoPolicy {
  switch (options.policy) {
    case 'deny': return { kind: 'deny' }
    case 'nearest-point':
      if (options.point === undefined) throw new TypeError('Expected unknownGeo.point to be set for the nearest-point policy, got undefined')
      return { kind: 'nearest-point', point: options.point }
    case 'default-group': {
      const group = options.group ?? [...inventory.edgesByGroup.keys()].find((id) => inventory.groups.get(id)?.zoneOnly !== true)
      if (group === undefined || !inventory.groups.has(group)) {
        throw new TypeError(`Expected unknownGeo.group to name a cache group of the inventory (${[...inventory.groups.keys()].join(', ')}), got ${JSON.stringify(group)}`)
      }
      return { kind: 'default-group', group }
    }
  }
}

/** A zone naming a group the inventory lacks is ignored by steering; say so once at start. */
function checkZoneGroups (zones: CoverageZones | undefined, inventory: Inventory, logger: Logger): void {
  const missing = (zones?.groups ?? []).filter((g) => !inventory.groups.has(g))
  if (missing.length > 0) logger.warn({ groups: missing }, 'coverage zones name cache groups that are not in the inventory; those zones fall back to GeoIP order')
}
