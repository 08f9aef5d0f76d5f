/**
 * `streamedge start`: a complete local CDN on this machine, with playable demo content.
 *
 *   demo origin → shield → edges "in" Frankfurt, Ashburn and Tokyo → control plane
 *
 * The roles are started through their own composition roots (the same code the
 * `shield`, `edge` and `control-plane` commands run), on loopback with free ports. The
 * control plane steers with the embedded DB-IP database, signs playback tokens the edges
 * require, and serves HLS Content Steering manifests; edges report heartbeats. A player
 * on this machine (127.0.0.1, which no GeoIP database locates) is steered by the
 * unknown-location policy to the first edge's group.
 */
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { stringify as toYaml } from 'yaml'
import type { StreamedgeConfig } from '../config/params.ts'
import { startControlPlane } from '../control-plane/main.ts'
import type { RunningCacheNode } from '../edge/cache-node.ts'
import { startEdge } from '../edge/main.ts'
import { createLogger } from '../lib/log.ts'
import { startShield } from '../shield/main.ts'
import { startOrigin } from './origin/origin-server.ts'

/** Where the demo's edges claim to be (the control plane steers by these). */
export const DEMO_REGIONS = [
  { group: 'eu-central', city: 'Frankfurt', lat: 50.11, lon: 8.68 },
  { group: 'us-east', city: 'Ashburn', lat: 39.04, lon: -77.49 },
  { group: 'ap-northeast', city: 'Tokyo', lat: 35.68, lon: 139.77 },
  { group: 'sa-east', city: 'Sao Paulo', lat: -23.55, lon: -46.63 },
] as const

export interface RunningDemo {
  readonly originUrl: string
  readonly shield: RunningCacheNode
  readonly edges: readonly RunningCacheNode[]
  readonly controlPlaneUrl: string
  /** Bearer token of the control plane's POST /v1/purge and /v1/prefill (fresh each run). */
  readonly adminToken: string
  /** Demo content paths (VOD masters and the live stream). */
  readonly titles: readonly string[]
  /** Steering URLs, one per title. */
  readonly steeringUrls: readonly string[]
  close (): Promise<void>
}

/** Starts the demo CDN. Cache directories and the control plane's files live under `<edge.cacheDir>/demo`. */
export async function startDemo (config: Readonly<StreamedgeConfig>): Promise<RunningDemo> {
  const host = config.start.listenHost
  const port = (i: number): number => config.start.basePort === 0 ? 0 : config.start.basePort + i
  const logger = createLogger({ level: config.log.level, bindings: { demo: true } })
  const root = resolve(config.edge.cacheDir, 'demo')
  mkdirSync(root, { recursive: true })
  // Fresh secrets per run: the demo never ships a key someone could reuse.
  const tokenKeys = [`demo:${randomBytes(24).toString('base64url')}`]
  const heartbeatKey = randomBytes(24).toString('base64url')
  // Node admin token (purge, prefill, inventory): the control plane uses it to fan out purges and read
  // inventories. A token given in the config is kept (the edge's; the shield gets the same).
  const nodeAdminToken = config.edge.admin.token ?? config.shield.admin.token ?? randomBytes(24).toString('base64url')
  const adminToken = config.controlPlane.adminToken ?? randomBytes(24).toString('base64url')
  const stops: Array<() => Promise<void>> = []
  const close = async (): Promise<void> => {
    for (const stop of stops.reverse()) await stop().catch(() => {})
  }
  try {
    const origin = await startOrigin({ host, port: port(0) })
    stops.push(() => origin.close())

    const shield = await startShield({
      ...config,
      shield: {
        ...config.shield,
        id: 'shield-1',
        listen: { host, port: port(1) },
        cacheDir: dir(root, 'shield-1'),
        origins: [origin.url],
        trustedProxies: [host],
        admin: { ...config.shield.admin, token: nodeAdminToken },
      },
    }, { logger: logger.child({ role: 'shield', node: 'shield-1' }), processMetrics: false })
    stops.push(() => shield.close())

    const nodesFile = join(root, 'nodes.yaml')
    const licensingFile = join(root, 'licensing.yaml')
    const first = DEMO_REGIONS[0]
    writeNodes(nodesFile, shield.url, [])
    writeFileSync(licensingFile, toYaml({
      rules: [{ prefix: '/vod/bars/', deny: ['BR'], unknown: 'allow', note: 'demo: not licensed in Brazil' }],
    }))
    const cp = await startControlPlane({
      ...config,
      controlPlane: {
        ...config.controlPlane,
        id: 'cp-1',
        listen: { host, port: port(2) },
        nodesFile,
        licensingFile,
        trustedProxies: [host],
        tokenKeys,
        heartbeatKey,
        adminToken,
        purge: { ...config.controlPlane.purge, nodeToken: nodeAdminToken },
        inventory: { ...config.controlPlane.inventory, intervalMs: 5000 },
        unknownGeo: { ...config.controlPlane.unknownGeo, policy: 'nearest-point', point: `${first.lat},${first.lon}` },
        probe: { ...config.controlPlane.probe, intervalMs: 500, timeoutMs: 1000 },
        reloadIntervalMs: 200,
      },
    }, { logger: logger.child({ role: 'control-plane', node: 'cp-1' }), processMetrics: false })
    stops.push(() => cp.close())

    const edges: RunningCacheNode[] = []
    for (let i = 0; i < config.start.edges; i++) {
      const id = `edge-${i + 1}`
      const edge = await startEdge({
        ...config,
        edge: {
          ...config.edge,
          id,
          listen: { host, port: port(3 + i) },
          cacheDir: dir(root, id),
          origin: origin.url,
          shields: [shield.url],
          token: { ...config.edge.token, required: true, keys: tokenKeys },
          controlPlane: { ...config.edge.controlPlane, url: cp.url, heartbeatKey, heartbeatIntervalMs: 1000 },
          admin: { ...config.edge.admin, token: nodeAdminToken },
        },
      }, { logger: logger.child({ role: 'edge', node: id }), processMetrics: false })
      edges.push(edge)
      stops.push(() => edge.close())
    }
    writeNodes(nodesFile, shield.url, edges.map((e, i) => ({ id: `edge-${i + 1}`, url: e.url, ...DEMO_REGIONS[i % DEMO_REGIONS.length]! })))
    await waitFor(() => edges.every((_, i) => cp.health.statusOf(`edge-${i + 1}`) === 'available'), 15_000)

    const titles = ['/vod/bbb-test/master.m3u8', '/vod/bars/master.m3u8', '/live/bbb-test/master.m3u8']
    return {
      originUrl: origin.url,
      shield,
      edges,
      controlPlaneUrl: cp.url,
      adminToken,
      titles,
      steeringUrls: titles.map((t) => `${cp.url}/v1/steer${t}`),
      close,
    }
  } catch (err) {
    await close()
    throw err
  }
}

function dir (root: string, name: string): string {
  const path = join(root, name)
  mkdirSync(path, { recursive: true })
  return path
}

interface DemoNode { readonly id: string, readonly url: string, readonly group: string, readonly lat: number, readonly lon: number }

function writeNodes (file: string, shieldUrl: string, edges: readonly DemoNode[]): void {
  const first = DEMO_REGIONS[0]
  const node = (n: DemoNode, role: string): Record<string, unknown> =>
    ({ id: n.id, role, url: n.url, group: n.group, lat: n.lat, lon: n.lon, capacity: { connections: 10_000, mbps: 10_000 } })
  writeFileSync(file, toYaml({
    nodes: [node({ id: 'shield-1', url: shieldUrl, group: first.group, lat: first.lat, lon: first.lon }, 'shield'), ...edges.map((e) => node(e, 'edge'))],
  }))
}

async function waitFor (check: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > until) throw new Error('demo: the control plane did not see every edge healthy in time')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Prints what to open (on stderr, so stdout stays pure JSON log lines). */
export function printDemo (demo: RunningDemo): void {
  const lines = [
    '',
    'streamedge demo CDN is up: origin → shield → edges → control plane, all on this machine.',
    `  origin:        ${demo.originUrl}`,
    `  shield:        ${demo.shield.url}`,
    ...demo.edges.map((e, i) => `  edge-${i + 1}:        ${e.url}  (${DEMO_REGIONS[i % DEMO_REGIONS.length]!.city}; metrics: ${e.url}/metrics)`),
    `  control plane: ${demo.controlPlaneUrl}  (metrics: ${demo.controlPlaneUrl}/metrics)`,
    '',
    'Steering URLs (open with ffplay, VLC, or an hls.js page; edges require the token the steering 302 adds):',
    ...demo.steeringUrls.map((u) => `  ${u}`),
    '',
    `Explain a decision: ${demo.steeringUrls[0]}?format=json`,
    `Admin (purge, prefill) bearer token for this run: ${demo.adminToken}`,
    'Press Ctrl-C to stop.',
    '',
  ]
  process.stderr.write(lines.join('\n'))
}
