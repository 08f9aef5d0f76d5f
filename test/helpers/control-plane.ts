/**
 * Control-plane test glue: fake fleet nodes (real HTTP servers that answer /readyz and
 * /admin/purge and can be told to fail), a control plane with a fixture GeoIP database and
 * data files in a temp dir, and a JSON-lines log capture. Everything closes at teardown.
 */
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { stringify as toYaml } from 'yaml'
import { createLogger } from '../../lib/log.ts'
import { TokenKey } from '../../lib/protocol/token.ts'
import { CONTROL_PLANE_DEFAULTS, startControlPlaneNode, type ControlPlaneOptions, type RunningControlPlane } from '../../control-plane/control-plane.ts'
import { tempDir } from './cache-node.ts'
import { writeMaxmindFixture } from './geo-fixtures.ts'
import { captureLogs } from './log-capture.ts'

interface Teardown { teardown (fn: () => unknown): void }

/** A fake edge or shield. */
export interface FakeNode {
  readonly url: string
  /** `/readyz` answers 200 while true, 503 while false. */
  ready: boolean
  /** Purge status to answer (200 by default). */
  purgeStatus: number
  readonly purges: Array<{ authorization: string | undefined, body: unknown }>
  /** Requests seen, by path. */
  readonly hits: string[]
  /** Stops the server (a killed node); idempotent. */
  close (): Promise<void>
}

/** Starts a fake node on 127.0.0.1:0. */
export async function startFakeNode (t: Teardown): Promise<FakeNode> {
  const server = http.createServer((req, res) => {
    node.hits.push(req.url ?? '')
    if (req.url === '/readyz') {
      res.writeHead(node.ready ? 200 : 503)
      res.end()
      return
    }
    if (req.url === '/admin/purge' && req.method === 'POST') {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        node.purges.push({ authorization: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString()) })
        res.writeHead(node.purgeStatus, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ purged: 3 }))
      })
      return
    }
    res.writeHead(404)
    res.end()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  let closed = false
  const node: FakeNode = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    ready: true,
    purgeStatus: 200,
    purges: [],
    hits: [],
    async close () {
      if (closed) return
      closed = true
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
  t.teardown(() => node.close())
  return node
}

/** Where fleet nodes sit (the fixture GeoIP places are London, Frankfurt, Ashburn, Tokyo, ...). */
export const FLEET = [
  { id: 'edge-fra', group: 'eu-central', lat: 50.11, lon: 8.68 },
  { id: 'edge-fra-b', group: 'eu-central', lat: 50.11, lon: 8.68 },
  { id: 'edge-lon', group: 'eu-west', lat: 51.51, lon: -0.13 },
  { id: 'edge-iad', group: 'us-east', lat: 39.04, lon: -77.49 },
  { id: 'edge-nrt', group: 'ap-northeast', lat: 35.68, lon: 139.77 },
  { id: 'edge-isp', group: 'isp-berlin', lat: 52.52, lon: 13.4 },
  { id: 'shield-1', group: 'eu-central', lat: 50.11, lon: 8.68, role: 'shield' },
] as const

/** Token key shared by the tests. */
export const TEST_TOKEN_KEY = new TokenKey('t1', 'control-plane-test-secret-0123456789')
export const HEARTBEAT_KEY = 'test-heartbeat-key'
export const ADMIN_TOKEN = 'test-admin-token'
export const NODE_ADMIN_TOKEN = 'test-node-admin-token'

/** A started control plane with its fleet, files and captured logs. */
export interface TestControlPlane {
  readonly cp: RunningControlPlane
  readonly nodes: ReadonlyMap<string, FakeNode>
  readonly dir: string
  readonly nodesFile: string
  readonly licensingFile: string
  readonly logs: Array<Record<string, unknown>>
  /** Writes a new nodes file (the fleet with overrides per node id). */
  writeNodes (overrides?: Record<string, Record<string, unknown>>): Promise<void>
}

/** Starts the fleet and a control plane in front of it. Probes run only when the test calls probeNow(). */
export async function startTestControlPlane (t: Teardown, overrides: Partial<ControlPlaneOptions> = {}): Promise<TestControlPlane> {
  const dir = await tempDir(t, 'streamedge-cp-')
  const nodes = new Map<string, FakeNode>()
  for (const spec of FLEET) nodes.set(spec.id, await startFakeNode(t))
  const nodesFile = join(dir, 'nodes.yaml')
  const writeNodes = async (changes: Record<string, Record<string, unknown>> = {}): Promise<void> => {
    await writeFile(nodesFile, toYaml({
      groups: { 'eu-central': { fallbacks: ['eu-west'] }, 'isp-berlin': { zoneOnly: true, fallbacks: ['eu-central'] } },
      nodes: FLEET.map((spec) => ({
        id: spec.id,
        role: 'role' in spec ? spec.role : 'edge',
        url: nodes.get(spec.id)?.url,
        group: spec.group,
        lat: spec.lat,
        lon: spec.lon,
        capacity: { connections: 1000, mbps: 10_000 },
        ...changes[spec.id],
      })),
    }))
  }
  await writeNodes()
  const licensingFile = join(dir, 'licensing.yaml')
  await writeFile(licensingFile, toYaml({
    rules: [
      { prefix: '/vod/uk-only/', allow: ['GB'] },
      { prefix: '/vod/not-in-jp/', deny: ['JP'], unknown: 'allow' },
    ],
  }))
  const zonesFile = join(dir, 'zones.json')
  await writeFile(zonesFile, JSON.stringify({ coverageZones: { 'isp-berlin': { network: ['100.64.0.0/10'], country: 'DE' } } }))
  const { logs, destination } = captureLogs()
  const cp = await startControlPlaneNode({
    ...CONTROL_PLANE_DEFAULTS,
    id: 'cp-test',
    listen: { host: '127.0.0.1', port: 0 },
    nodesFile,
    licensingFile,
    coverageZonesFile: zonesFile,
    geoipFiles: [await writeMaxmindFixture(dir)],
    trustedProxies: ['127.0.0.1'],
    tokenKeys: [TEST_TOKEN_KEY],
    heartbeatKey: HEARTBEAT_KEY,
    adminToken: ADMIN_TOKEN,
    purge: { nodeToken: NODE_ADMIN_TOKEN, timeoutMs: 2000 },
    probe: { path: '/readyz', intervalMs: 3_600_000, timeoutMs: 1000, failThreshold: 2, riseThreshold: 2 },
    reloadIntervalMs: 25,
    logger: createLogger({ level: 'debug', destination }),
    ...overrides,
  })
  t.teardown(() => cp.close())
  return { cp, nodes, dir, nodesFile, licensingFile, logs, writeNodes }
}

/** Polls until `check` holds (file reloads are polled); fails after `timeoutMs`. */
export async function eventually (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
