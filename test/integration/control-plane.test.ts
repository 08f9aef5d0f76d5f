/**
 * The whole CDN on loopback: demo origin → shield → three edges "in" Frankfurt, Ashburn and
 * Tokyo (by their inventory coordinates) → control plane with the embedded DB-IP database.
 * Client countries come from real addresses sent through a trusted proxy's X-Forwarded-For.
 *
 * Needs the edge wiring of issue 5 (edge.token.*, edge.controlPlane.*): token check at the
 * top of the pipeline, EXT-X-CONTENT-STEERING on master playlists, heartbeats, CORS. The
 * control-plane-only subtests (steering by country, 451, failover) pass without it.
 */
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { stringify as toYaml } from 'yaml'
import { startOrigin } from '../../bench/origin/origin-server.ts'
import { loadConfig } from '../../config/load.ts'
import { startControlPlane } from '../../control-plane/main.ts'
import { startEdge } from '../../edge/main.ts'
import type { RunningCacheNode } from '../../edge/cache-node.ts'
import { createLogger } from '../../lib/log.ts'
import { startTestNode, tempDir } from '../helpers/cache-node.ts'
import { eventually } from '../helpers/control-plane.ts'
import { fetchRaw, type Fetched } from '../helpers/http-client.ts'

const run = promisify(execFile)
const TOKEN_KEYS = 'k1:integration-secret-0123456789abcdef'
const HEARTBEAT_KEY = 'integration-heartbeat-key'
const ADMIN_TOKEN = 'integration-admin-token'

// Real addresses and where DB-IP City Lite puts them.
const US = '8.8.8.8' // Mountain View → Ashburn is nearest
const JP = '133.11.0.1' // Tokyo
const GB = '81.2.69.142' // London → Frankfurt is nearest
const DE = '2a00:1450:4001:82a::200e' // Frankfurt, IPv6
const BR = '200.147.67.142' // Rio de Janeiro: not licensed for /vod/bars/

const EDGES = [
  { id: 'edge-eu', group: 'eu-central', lat: 50.11, lon: 8.68 },
  { id: 'edge-us', group: 'us-east', lat: 39.04, lon: -77.49 },
  { id: 'edge-jp', group: 'ap-northeast', lat: 35.68, lon: 139.77 },
] as const

const silent = createLogger({ level: 'silent' })

t.test('control plane + 3 edges + shield + demo origin', async (t) => {
  const dir = await tempDir(t, 'streamedge-cp-int-')
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const shield = await startTestNode(t, { role: 'shield', id: 'shield-1', origin: origin.url, accessLog: false, logger: silent })

  // The control plane starts with the shield only; the edges join through a nodes-file reload.
  const nodesFile = join(dir, 'nodes.yaml')
  const writeNodes = async (edges: ReadonlyArray<{ id: string, url: string, group: string, lat: number, lon: number }>): Promise<void> => {
    const node = (n: { id: string, url: string, group: string, lat: number, lon: number }, role: string): Record<string, unknown> =>
      ({ id: n.id, role, url: n.url, group: n.group, lat: n.lat, lon: n.lon, capacity: { connections: 1000, mbps: 10_000 } })
    await writeFile(nodesFile, toYaml({ nodes: [node({ id: 'shield-1', url: shield.url, group: 'eu-central', lat: 50.11, lon: 8.68 }, 'shield'), ...edges.map((e) => node(e, 'edge'))] }))
  }
  await writeNodes([])
  const licensingFile = join(dir, 'licensing.yaml')
  await writeFile(licensingFile, toYaml({ rules: [{ prefix: '/vod/bars/', deny: ['BR'], unknown: 'allow' }] }))
  const cp = await startControlPlane(loadConfig({
    env: {},
    argv: {
      'log.level': 'silent',
      'controlPlane.id': 'cp-int',
      'controlPlane.listen': '127.0.0.1:0',
      'controlPlane.nodesFile': nodesFile,
      'controlPlane.licensingFile': licensingFile,
      'controlPlane.trustedProxies': '127.0.0.1',
      'controlPlane.tokenKeys': TOKEN_KEYS,
      'controlPlane.heartbeatKey': HEARTBEAT_KEY,
      'controlPlane.adminToken': ADMIN_TOKEN,
      'controlPlane.unknownGeo.policy': 'nearest-point',
      'controlPlane.unknownGeo.point': '50.11,8.68',
      'controlPlane.probe.intervalMs': 200,
      'controlPlane.probe.timeoutMs': 500,
      'controlPlane.probe.failThreshold': 2,
      'controlPlane.reloadIntervalMs': 50,
    },
  }), { processMetrics: false, logger: silent })
  t.teardown(() => cp.close())

  const edges = new Map<string, RunningCacheNode>()
  for (const spec of EDGES) {
    const edge = await startEdge(loadConfig({
      env: {},
      argv: {
        'log.level': 'silent',
        'log.access': false,
        'edge.id': spec.id,
        'edge.listen': '127.0.0.1:0',
        'edge.origin': shield.url,
        'edge.cacheDir': await tempDir(t, `streamedge-${spec.id}-`),
        'edge.token.required': true,
        'edge.token.keys': TOKEN_KEYS,
        'edge.controlPlane.url': cp.url,
        'edge.controlPlane.heartbeatKey': HEARTBEAT_KEY,
        'edge.controlPlane.heartbeatIntervalMs': 200,
      },
    }), { logger: silent, processMetrics: false })
    let closed = false
    const close = async (): Promise<void> => {
      if (closed) return
      closed = true
      await edge.close()
    }
    t.teardown(close)
    edges.set(spec.id, { ...edge, close })
  }
  await writeNodes(EDGES.map((e) => ({ ...e, url: edges.get(e.id)?.url ?? '' })))
  await eventually(() => EDGES.every((e) => cp.health.statusOf(e.id) === 'available'), 'every edge probed up')

  const steer = (path: string, ip: string): Promise<Fetched> => fetchRaw(`${cp.url}/v1/steer${path}`, { headers: { 'x-forwarded-for': ip } })
  const edgeOf = (res: Fetched): string | undefined => {
    for (const [id, edge] of edges) if ((res.headers.location ?? '').startsWith(`${edge.url}/t/`)) return id
    return undefined
  }

  t.test('clients from several countries land on the expected edge', async (t) => {
    const expected: Array<[string, string]> = [[US, 'edge-us'], [JP, 'edge-jp'], [GB, 'edge-eu'], [DE, 'edge-eu']]
    for (const [ip, edge] of expected) {
      const res = await steer('/vod/bbb-test/master.m3u8', ip)
      t.equal(res.status, 302, `${ip}: 302`)
      t.equal(edgeOf(res), edge, `${ip} → ${edge}`)
      t.equal(res.headers['access-control-allow-origin'], '*')
    }
  })

  t.test('a denied country gets 451 with a reason', async (t) => {
    const res = await steer('/vod/bars/master.m3u8', BR)
    t.equal(res.status, 451)
    t.match(JSON.parse(res.body.toString()), { error: 'CDN_ERR_LICENCE_DENIED', reason: 'country-denied', country: 'BR', rule: '/vod/bars/' })
    t.equal((await steer('/vod/bbb-test/master.m3u8', BR)).status, 302, 'other titles are fine')
  })

  t.test('edges refuse requests without a valid token (wired: edge.token.required)', async (t) => {
    const edge = edges.get('edge-eu')!
    const direct = await fetchRaw(`${edge.url}/vod/bbb-test/master.m3u8`)
    t.equal(direct.status, 403, 'no token: 403')
    const location = (await steer('/vod/bbb-test/master.m3u8', GB)).headers.location ?? ''
    const token = /\/t\/([^/]+)\//.exec(location)?.[1] ?? ''
    t.equal((await fetchRaw(`${edge.url}/t/${token}/vod/bars/master.m3u8`)).status, 403, 'a token for another title: 403')
    t.equal((await fetchRaw(`${edge.url}/t/${token.slice(0, -4)}AAAA/vod/bbb-test/master.m3u8`)).status, 403, 'a forged token: 403')
    const ok = await fetchRaw(location)
    t.equal(ok.status, 200, 'the steering URL plays')
    t.equal(ok.headers['access-control-allow-origin'], '*', 'edge responses carry CORS')
  })

  t.test('a token steered for an unrestricted path never opens a licensed title below it', async (t) => {
    const edge = edges.get('edge-eu')!
    // /vod/ itself has no rule: BR may steer a file there, but /vod/bars/ is refused to BR
    const shallow = await steer('/vod/index.m3u8', BR)
    t.equal(shallow.status, 302, 'the unrestricted file is steered')
    const token = /\/t\/([^/]+)\//.exec(shallow.headers.location ?? '')?.[1] ?? ''
    t.equal((await fetchRaw(`${edge.url}/t/${token}/vod/bars/master.m3u8`)).status, 403, 'its token does not reach /vod/bars/')
    t.equal((await fetchRaw(`${edge.url}/t/${token}/vod/bbb-test/master.m3u8`)).status, 403, 'nor any other title: it names the steered file alone')
    const explained = JSON.parse((await steer('/vod/index.m3u8?format=json', BR)).body.toString()) as { explain: { licence: { tokenScope?: string } } }
    t.equal(explained.explain.licence.tokenScope, '/vod/index.m3u8', 'the explained answer says why')
    const allowed = await steer('/vod/index.m3u8', GB)
    const wide = /\/t\/([^/]+)\//.exec(allowed.headers.location ?? '')?.[1] ?? ''
    t.equal((await fetchRaw(`${edge.url}/t/${wide}/vod/bars/master.m3u8`)).status, 200, 'a client every rule below allows gets the whole directory')
  })

  t.test('master playlists carry content steering, and the manifest ranks the session\'s edge first (wired)', async (t) => {
    const location = (await steer('/vod/bbb-test/master.m3u8', JP)).headers.location ?? ''
    const master = (await fetchRaw(location)).body.toString()
    const serverUri = /#EXT-X-CONTENT-STEERING:SERVER-URI="([^"]+)",PATHWAY-ID="edge-jp"/.exec(master)?.[1]
    t.ok(serverUri?.startsWith(`${cp.url}/v1/steering/manifest?`), 'an absolute SERVER-URI on the control plane')
    t.match(master, /#EXT-X-STREAM-INF:.*PATHWAY-ID="edge-jp"/)
    const manifest = await fetchRaw(serverUri ?? `${cp.url}/v1/steering/manifest`, { headers: { 'x-forwarded-for': JP } })
    t.equal(manifest.status, 200)
    t.match(JSON.parse(manifest.body.toString()), { VERSION: 1, 'PATHWAY-PRIORITY': ['edge-jp'] })
  })

  t.test('edges push heartbeats to the control plane (wired)', async (t) => {
    await eventually(() => EDGES.every((e) => cp.health.view(e.id)?.lastHeartbeatAtMs !== undefined), 'a heartbeat from every edge', 5000)
      .then(() => t.pass('every edge reported'), (err: Error) => t.fail(err.message))
  })

  t.test('ffmpeg plays a title end to end from the steering URL (wired)', async (t) => {
    const steering = `${cp.url}/v1/steer/vod/bbb-test/master.m3u8`
    await run('ffmpeg', ['-nostdin', '-v', 'error', '-headers', `X-Forwarded-For: ${US}\r\n`, '-i', steering, '-map', '0', '-c', 'copy', '-f', 'null', '-'], { timeout: 60_000 })
      .then(() => t.pass('ffmpeg played every segment'), (err: { stderr?: string }) => t.fail(`ffmpeg failed: ${err.stderr ?? String(err)}`))
    t.ok(await edges.get('edge-us')!.metrics.lookups.value() > 5, 'through the US edge')
  })

  t.test('killing an edge moves new steering and the steering manifest away within the health window', async (t) => {
    const before = await steer('/vod/bbb-test/master.m3u8', GB)
    t.equal(edgeOf(before), 'edge-eu')
    const manifestUrl = `${cp.url}/v1/steering/manifest?title=${encodeURIComponent('/vod/bbb-test/')}&pathway=edge-eu`
    await edges.get('edge-eu')!.close()
    // probes every 200 ms, down after 2 failures: well within a few seconds
    await eventually(async () => edgeOf(await steer('/vod/bbb-test/master.m3u8', GB)) !== 'edge-eu', 'steering away from the dead edge', 10_000)
    t.equal(edgeOf(await steer('/vod/bbb-test/master.m3u8', GB)), 'edge-us', 'to the next nearest edge')
    const manifest = JSON.parse((await fetchRaw(manifestUrl, { headers: { 'x-forwarded-for': GB } })).body.toString()) as { 'PATHWAY-PRIORITY': string[], 'PATHWAY-CLONES': Array<{ ID: string }> }
    t.notOk(manifest['PATHWAY-PRIORITY'].includes('edge-eu'), 'the manifest no longer offers it')
    t.equal(manifest['PATHWAY-PRIORITY'][0], 'edge-us')
    t.ok(manifest['PATHWAY-CLONES'].some((c) => c.ID === 'edge-us'), 'players clone the playlist onto the new edge')
  })
})
