/**
 * The control plane over real sockets, in front of a fleet of fake nodes: steering by
 * country through a trusted proxy's X-Forwarded-For, coverage zones, the unknown-location
 * policy, licence refusals (451), explained decisions, tokens, CORS, node failure moving
 * steering and the steering manifest, draining, heartbeats (signature, overload, self-drain,
 * staleness), purge fan-out, hot reloads, metrics and decision logs; steering answered by the
 * fast path below node:http and by node:http itself, byte for byte alike.
 */
import { writeFile } from 'node:fs/promises'
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import t from 'tap'
import { stringify as toYaml } from 'yaml'
import { signReport, SIGNATURE_HEADER, type NodeReport } from '../../lib/protocol/node-report.ts'
import { TokenVerifier } from '../../lib/protocol/token.ts'
import { fetchRaw, type Fetched } from '../helpers/http-client.ts'
import { FIXTURE_PLACES } from '../helpers/geo-fixtures.ts'
import {
  ADMIN_TOKEN, eventually, HEARTBEAT_KEY, NODE_ADMIN_TOKEN, startTestControlPlane, TEST_TOKEN_KEY, type TestControlPlane
} from '../helpers/control-plane.ts'

const GB = '81.2.69.142'
const DE = '2.125.160.216'
const US = '216.160.83.56'
const JP = '175.16.199.10'
const SE = '89.160.20.112'
const DE6 = '2001:db8:de::1'
const ISP = '100.64.1.1'
const UNKNOWN = '10.9.8.7'

function steer (cp: TestControlPlane, path: string, clientIp: string, extra: Record<string, string> = {}): Promise<Fetched> {
  return fetchRaw(`${cp.cp.url}/v1/steer${path}`, { headers: { 'x-forwarded-for': clientIp, ...extra } })
}

/** A GET with the path sent exactly as given (URL objects would resolve the dot segments). */
function rawGet (base: string, path: string): Promise<{ status: number, body: string }> {
  const { hostname, port } = new URL(base)
  return new Promise((resolve, reject) => {
    http.get({ host: hostname, port, path, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }))
    }).on('error', reject)
  })
}

function json<T = Record<string, unknown>> (res: Fetched): T {
  return JSON.parse(res.body.toString()) as T
}

/** The node a 302 points at. */
function nodeOf (cp: TestControlPlane, res: Fetched): string | undefined {
  const location = res.headers.location ?? ''
  for (const [id, node] of cp.nodes) if (location.startsWith(`${node.url}/`)) return id
  return undefined
}

t.test('clients are steered to the nearest edge of their country, with a token in the path', async (t) => {
  const cp = await startTestControlPlane(t)
  const expected: Array<[string, string[]]> = [
    [GB, ['edge-lon']], [DE, ['edge-fra', 'edge-fra-b']], [US, ['edge-iad']], [JP, ['edge-nrt']],
    [SE, ['edge-fra', 'edge-fra-b']], [DE6, ['edge-fra', 'edge-fra-b']], [ISP, ['edge-isp']], [UNKNOWN, ['edge-fra', 'edge-fra-b']],
  ]
  const verifier = new TokenVerifier([TEST_TOKEN_KEY])
  for (const [ip, nodes] of expected) {
    const res = await steer(cp, '/vod/bbb/master.m3u8?start=10', ip)
    t.equal(res.status, 302, `${ip}: 302`)
    t.ok(nodes.includes(nodeOf(cp, res) ?? ''), `${ip} → ${nodeOf(cp, res)} (one of ${nodes.join(', ')})`)
    const location = new URL(res.headers.location ?? '')
    const match = /^\/t\/([^/]+)(\/vod\/bbb\/master\.m3u8)$/.exec(location.pathname)
    t.ok(match, 'token in the path, then the content path')
    t.equal(location.search, '?start=10', 'the query is passed on')
    const verified = verifier.verify(match?.[1] ?? '', { nowMs: Date.now(), path: '/vod/bbb/360p/seg-1.ts' })
    t.ok(verified.ok, 'the token covers the title')
    t.equal(res.headers['access-control-allow-origin'], '*')
    t.equal(res.headers['cache-control'], 'no-store')
  }
  const place = FIXTURE_PLACES.find((p) => p.probe === GB)!
  const explained = json<{ decision: string, node: { id: string }, token: { country: string, path: string }, explain: { location: { source: string, country: string, city: string }, candidates: Array<{ verdict: string }> } }>(
    await steer(cp, '/vod/bbb/master.m3u8?format=json', GB))
  t.equal(explained.decision, 'redirect')
  t.equal(explained.node.id, 'edge-lon')
  t.same(explained.explain.location, { source: 'geoip', point: { lat: place.lat, lon: place.lon }, country: 'GB', city: 'London', precision: 'city', prefixKey: 'g:51024500/24', network: '81.2.69.0/24' })
  t.equal(explained.token.country, 'GB')
  t.equal(explained.token.path, '/vod/bbb/')
  t.equal(explained.explain.candidates.at(-1)?.verdict, 'chosen')
  const isp = json<{ explain: { location: { source: string, country: string } } }>(await steer(cp, '/vod/bbb/master.m3u8?format=json', ISP))
  t.match(isp.explain.location, { source: 'coverage-zone', country: 'DE' })
  const direct = await fetchRaw(`${cp.cp.url}/v1/steer/vod/bbb/master.m3u8`)
  t.equal(direct.status, 302, 'without a proxy the socket address is the client (127.0.0.1: unknown → default group)')
  const spoofed = await fetchRaw(`${cp.cp.url}/v1/steer/vod/bbb/master.m3u8?format=json`, { headers: { 'x-forwarded-for': `${GB}, ${JP}` } })
  t.equal(json<{ node: { id: string } }>(spoofed).node.id, 'edge-nrt', 'the rightmost untrusted hop is the client')
})

t.test('licensing: 451 with a JSON reason, by country, for unknown locations, after a hot reload', async (t) => {
  const cp = await startTestControlPlane(t)
  t.equal((await steer(cp, '/vod/uk-only/master.m3u8', GB)).status, 302)
  const de = await steer(cp, '/vod/uk-only/master.m3u8', DE)
  t.equal(de.status, 451)
  t.equal(de.headers['access-control-allow-origin'], '*', 'CORS on refusals too')
  t.match(json(de), { error: 'CDN_ERR_LICENCE_DENIED', reason: 'country-not-allowed', rule: '/vod/uk-only/', country: 'DE' })
  t.match(json(await steer(cp, '/vod/uk-only/master.m3u8', UNKNOWN)), { reason: 'unknown-location', country: null })
  t.match(json(await steer(cp, '/vod/not-in-jp/master.m3u8', JP)), { reason: 'country-denied', country: 'JP' })
  t.equal((await steer(cp, '/vod/not-in-jp/master.m3u8', UNKNOWN)).status, 302, 'unknown allowed by that rule')
  t.equal((await steer(cp, '/vod/uk-only/master.m3u8', ISP)).status, 451, 'a coverage-zone hit is still checked (zone country DE)')
  const explained = json<{ explain: { licence: unknown } }>(await steer(cp, '/vod/uk-only/master.m3u8?format=json', DE))
  t.same(explained.explain.licence, { rule: '/vod/uk-only/', allowed: false, reason: 'country-not-allowed' })
  t.equal(await cp.cp.metrics.licenceDenials.value({ country: 'DE', reason: 'country-not-allowed' }), 3, 'DE, the DE coverage zone, and the explained one')

  await writeFile(cp.licensingFile, toYaml({ rules: [{ prefix: '/vod/uk-only/', allow: ['GB', 'DE'] }] }))
  await eventually(async () => (await steer(cp, '/vod/uk-only/master.m3u8', DE)).status === 302, 'the new rules')
  await writeFile(cp.licensingFile, 'rules: [ { prefix: nope } ]')
  await eventually(async () => await cp.cp.metrics.reloads.value({ file: 'licensing', outcome: 'refused' }) > 0, 'the refused reload')
  t.equal((await steer(cp, '/vod/uk-only/master.m3u8', DE)).status, 302, 'a broken file keeps the last good rules')
})

t.test('a failing edge loses new sessions after the health window, and they come back after it recovers', async (t) => {
  const cp = await startTestControlPlane(t)
  t.equal(nodeOf(cp, await steer(cp, '/vod/x/master.m3u8', GB)), 'edge-lon')
  const manifestUrl = `${cp.cp.url}/v1/steering/manifest?title=${encodeURIComponent('/vod/x/')}&pathway=edge-lon`
  const before = json<{ 'PATHWAY-PRIORITY': string[] }>(await fetchRaw(manifestUrl, { headers: { 'x-forwarded-for': GB } }))
  t.equal(before['PATHWAY-PRIORITY'][0], 'edge-lon')

  cp.nodes.get('edge-lon')!.ready = false
  await cp.cp.probeNow()
  t.equal(nodeOf(cp, await steer(cp, '/vod/x/master.m3u8', GB)), 'edge-lon', 'one failed probe is not enough (hysteresis)')
  await cp.cp.probeNow()
  const moved = await steer(cp, '/vod/x/master.m3u8?format=json', GB)
  const body = json<{ node: { id: string }, explain: { candidates: Array<{ node: string, verdict: string }> } }>(moved)
  t.ok(['edge-fra', 'edge-fra-b'].includes(body.node.id), `moved to ${body.node.id}`)
  t.same(body.explain.candidates[0], { ...body.explain.candidates[0], node: 'edge-lon', verdict: 'down' }, 'the explanation says why')
  const after = json<{ 'PATHWAY-PRIORITY': string[], 'PATHWAY-CLONES': Array<{ 'BASE-ID': string, ID: string }> }>(await fetchRaw(manifestUrl, { headers: { 'x-forwarded-for': GB } }))
  t.notOk(after['PATHWAY-PRIORITY'].includes('edge-lon'), 'the manifest drops the failed edge')
  t.ok(after['PATHWAY-CLONES'].every((c) => c['BASE-ID'] === 'edge-lon'), 'clones keep the playlist pathway as base')
  t.ok(cp.logs.some((l) => l['msg'] === 'node health changed' && l['target'] === 'edge-lon' && l['to'] === 'down'), 'the change is logged')
  t.equal(await cp.cp.metrics.healthChanges.value({ target: 'edge-lon', status: 'down' }), 1)

  await cp.nodes.get('edge-lon')!.close()
  await cp.cp.probeNow() // may fail on the pooled keep-alive connection first
  await cp.cp.probeNow()
  t.match(cp.cp.health.view('edge-lon'), { status: 'down', lastProbeError: 'ECONNREFUSED' }, 'a killed node: connection refused')
})

t.test('draining and offline from the nodes file; heartbeats with overload, self-drain and staleness', async (t) => {
  const cp = await startTestControlPlane(t, { heartbeatTimeoutMs: 300 })
  await cp.writeNodes({ 'edge-lon': { state: 'draining' } })
  await eventually(() => cp.cp.health.statusOf('edge-lon') === 'draining', 'the reload')
  t.ok(['edge-fra', 'edge-fra-b'].includes(nodeOf(cp, await steer(cp, '/vod/x/master.m3u8', GB)) ?? ''), 'a draining edge gets no new sessions')
  await cp.writeNodes()
  await eventually(() => cp.cp.health.statusOf('edge-lon') === 'available', 'the reload back')

  const send = (report: Partial<NodeReport>, key = HEARTBEAT_KEY): Promise<Fetched> => {
    const body = JSON.stringify({ v: 1, id: 'edge-lon', role: 'edge', ready: true, connections: 10, egressMbps: 10, sentAtMs: Date.now(), ...report })
    return fetchRaw(`${cp.cp.url}/v1/heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signReport(body, key, Date.now()) }, body })
  }
  t.equal((await send({})).status, 204)
  t.equal((await send({}, 'wrong-key')).status, 401)
  t.equal((await send({ id: 'edge-nope' })).status, 404)
  t.equal((await send({ connections: -1 })).status, 400)
  t.equal((await fetchRaw(`${cp.cp.url}/v1/heartbeat`, { method: 'POST', body: '{}' })).status, 401, 'unsigned')
  t.equal(await cp.cp.metrics.heartbeats.value({ outcome: 'bad-signature' }), 2)

  t.equal((await send({ connections: 950 })).status, 204)
  t.equal(cp.cp.health.statusOf('edge-lon'), 'overloaded')
  const spilled = json<{ node: { id: string }, explain: { candidates: Array<{ node: string, verdict: string }> } }>(await steer(cp, '/vod/x/master.m3u8?format=json', GB))
  t.not(spilled.node.id, 'edge-lon', 'overload spills to the next group')
  t.match(spilled.explain.candidates.find((c) => c.node === 'edge-lon'), { verdict: 'overloaded' })
  await send({ ready: false })
  t.equal(cp.cp.health.statusOf('edge-lon'), 'not-ready', 'a node shutting down says so')
  await send({})
  t.equal(cp.cp.health.statusOf('edge-lon'), 'available')
  await eventually(() => cp.cp.health.statusOf('edge-lon') === 'heartbeat-stale', 'staleness')
  t.not(nodeOf(cp, await steer(cp, '/vod/x/master.m3u8', GB)), 'edge-lon', 'a silent node is down')
  const metrics = (await fetchRaw(`${cp.cp.url}/metrics`)).body.toString()
  t.match(metrics, /streamedge_cp_node_status\{target="edge-lon",group="eu-west",status="heartbeat-stale",role="control-plane",node="cp-test"\} 1/)
  t.match(metrics, /streamedge_cp_heartbeat_age_seconds\{target="edge-lon",role="control-plane",node="cp-test"\} \d/)
})

t.test('no edge left: 503 with Retry-After; unknown-location deny policy: 403', async (t) => {
  const cp = await startTestControlPlane(t, { unknownGeo: { policy: 'deny' } })
  t.match(json(await steer(cp, '/vod/x/master.m3u8', UNKNOWN)), { error: 'CDN_ERR_GEO_UNKNOWN' })
  t.equal((await steer(cp, '/vod/x/master.m3u8', UNKNOWN)).status, 403)
  t.equal(await cp.cp.metrics.unknownGeo.value({ policy: 'deny' }), 2)
  for (const node of cp.nodes.values()) node.ready = false
  await cp.cp.probeNow()
  await cp.cp.probeNow()
  const res = await steer(cp, '/vod/x/master.m3u8', GB)
  t.equal(res.status, 503)
  t.equal(res.headers['retry-after'], '5')
  t.match(json(res), { error: 'CDN_ERR_NO_NODE' })
  const manifest = await fetchRaw(`${cp.cp.url}/v1/steering/manifest?title=%2Fvod%2Fx%2F&pathway=edge-lon`, { headers: { 'x-forwarded-for': GB } })
  t.equal(manifest.status, 200, 'the manifest still answers 200, never 429 or 5xx')
  t.same(json(manifest)['PATHWAY-PRIORITY'], ['edge-lon'])
})

t.test('steering manifests: token sessions, reload URI, refusals with 410', async (t) => {
  const cp = await startTestControlPlane(t)
  const redirect = await steer(cp, '/vod/x/master.m3u8', DE)
  const token = /\/t\/([^/]+)\//.exec(redirect.headers.location ?? '')?.[1] ?? ''
  const edge = nodeOf(cp, redirect) ?? ''
  const url = `${cp.cp.url}/v1/steering/manifest?se_token=${token}&pathway=${edge}&_HLS_pathway=${edge}&_HLS_throughput=5000000`
  const res = await fetchRaw(url, { headers: { 'x-forwarded-for': DE, origin: 'null' } })
  t.equal(res.status, 200)
  t.equal(res.headers['access-control-allow-origin'], '*', 'Origin: null after a cross-origin redirect still gets CORS')
  t.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  const manifest = json<{ VERSION: number, TTL: number, 'RELOAD-URI': string, 'PATHWAY-PRIORITY': string[], 'PATHWAY-CLONES': Array<{ 'BASE-ID': string, ID: string, 'URI-REPLACEMENT': { HOST: string } }> }>(res)
  t.equal(manifest.VERSION, 1)
  t.equal(manifest.TTL, 30)
  t.equal(manifest['PATHWAY-PRIORITY'][0], edge, 'the session stays where it is while that edge is fine')
  t.equal(manifest['PATHWAY-PRIORITY'].length, 4, 'maxPathways')
  t.equal(manifest['RELOAD-URI'], `${cp.cp.url}/v1/steering/manifest?se_token=${token}&pathway=${edge}`, 'absolute, without the player\'s own parameters')
  for (const clone of manifest['PATHWAY-CLONES']) {
    t.equal(clone['BASE-ID'], edge)
    t.equal(clone['URI-REPLACEMENT'].HOST, new URL(cp.nodes.get(clone.ID)!.url).host)
  }
  const forged = await fetchRaw(`${cp.cp.url}/v1/steering/manifest?se_token=${token.slice(0, -3)}abc&pathway=${edge}`)
  t.equal(forged.status, 410, 'a forged session: stop reloading')
  t.equal((await fetchRaw(`${cp.cp.url}/v1/steering/manifest`)).status, 410)
  t.equal(await cp.cp.metrics.steeringManifests.value({ outcome: 'invalid-session' }), 2)
})

t.test('purge fan-out reaches every node and reports each result', async (t) => {
  const cp = await startTestControlPlane(t)
  const purge = (body: unknown, token = ADMIN_TOKEN): Promise<Fetched> =>
    fetchRaw(`${cp.cp.url}/v1/purge`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  t.equal((await purge({ prefix: '/vod/x/' }, 'wrong')).status, 401)
  t.equal((await purge({ prefix: 'vod' })).status, 400)
  t.equal((await purge({ url: '/a', prefix: '/b' })).status, 400)
  const ok = await purge({ prefix: '/vod/x/' })
  t.equal(ok.status, 200)
  const result = json<{ ok: boolean, results: Array<{ node: string, ok: boolean, purged: number }> }>(ok)
  t.equal(result.ok, true)
  t.equal(result.results.length, cp.nodes.size, 'every node, shields included')
  for (const node of cp.nodes.values()) t.same(node.purges, [{ authorization: `Bearer ${NODE_ADMIN_TOKEN}`, body: { prefix: '/vod/x/' } }])
  cp.nodes.get('edge-iad')!.purgeStatus = 500
  await cp.nodes.get('edge-nrt')!.close()
  const partial = await purge({ url: '/vod/x/master.m3u8' })
  t.equal(partial.status, 502)
  const body = json<{ ok: boolean, results: Array<{ node: string, ok: boolean, status?: number, error?: string }> }>(partial)
  t.equal(body.ok, false)
  t.match(body.results.find((r) => r.node === 'edge-iad'), { ok: false, status: 500 })
  t.match(body.results.find((r) => r.node === 'edge-nrt'), { ok: false, error: 'ECONNREFUSED' })
  t.equal(body.results.filter((r) => r.ok).length, cp.nodes.size - 2)
})

t.test('operational endpoints, CORS preflight, bad requests, admin views and decision logs', async (t) => {
  const cp = await startTestControlPlane(t)
  t.equal((await fetchRaw(`${cp.cp.url}/healthz`)).status, 200)
  t.equal((await fetchRaw(`${cp.cp.url}/readyz`)).status, 200)
  const preflight = await fetchRaw(`${cp.cp.url}/v1/steer/vod/x/master.m3u8`, { method: 'OPTIONS', headers: { origin: 'null', 'access-control-request-method': 'GET' } })
  t.equal(preflight.status, 204)
  t.equal(preflight.headers['access-control-allow-origin'], '*')
  for (const path of ['/v1/steer/vod/../etc/passwd', '/v1/steer/vod/%2e%2e/x', '/v1/steer/', '/v1/steer/t/abc/vod/x.m3u8']) {
    const res = await rawGet(cp.cp.url, path)
    t.equal(res.status, 400, path)
    t.match(JSON.parse(res.body), { error: 'CDN_ERR_REQUEST_INVALID' })
  }
  t.equal((await fetchRaw(`${cp.cp.url}/nope`)).status, 404)
  const head = await fetchRaw(`${cp.cp.url}/v1/steer/vod/x/master.m3u8`, { method: 'HEAD', headers: { 'x-forwarded-for': GB } })
  t.equal(head.status, 302)
  t.equal((await fetchRaw(`${cp.cp.url}/v1/nodes`)).status, 401)
  const nodes = json<{ nodes: Array<{ id: string, status: string, probe: { up: boolean } }> }>(await fetchRaw(`${cp.cp.url}/v1/nodes`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }))
  t.equal(nodes.nodes.length, cp.nodes.size)
  t.ok(nodes.nodes.every((n) => n.status === 'available' && n.probe.up), 'the first probe round ran before listening')

  for (let i = 0; i < 3; i++) await steer(cp, '/vod/x/master.m3u8', GB)
  const lines = cp.logs.filter((l) => l['msg'] === 'steer')
  t.ok(lines.length >= 4, 'one log line per decision')
  t.match(lines.at(-1), { outcome: 'redirect', client: GB, clientSource: 'x-forwarded-for', loc: 'geoip', country: 'GB', node: 'edge-lon', group: 'eu-west', cache: 'hit' })
  t.same(Object.keys(lines.at(-1)!), ['level', 'time', 'outcome', 'client', 'clientSource', 'path', 'loc', 'country', 'network', 'node', 'group', 'sid', 'cache', 'skipped', 'ms', 'msg'],
    'the decision line keeps pino\'s shape: level, time, the fields in their fixed order, msg')
  t.notOk(JSON.stringify(cp.logs).includes('control-plane-test-secret'), 'keys never logged')
  t.ok(await cp.cp.metrics.decisionCache.value({ result: 'hit' }) >= 2, 'repeat decisions hit the cache')
  const metrics = (await fetchRaw(`${cp.cp.url}/metrics`)).body.toString()
  t.match(metrics, /streamedge_cp_decisions_total\{outcome="redirect",group="eu-west",role="control-plane",node="cp-test"\} [4-9]/)
  t.match(metrics, /streamedge_cp_decision_seconds_bucket\{le="0.005",role="control-plane",node="cp-test"\} \d+/)
  t.match(metrics, /streamedge_cp_unknown_geo_total/)
})

/** One raw connection: writes `pieces` (a gap between them) and collects bytes until `done(text)` or the server closes. */
async function rawExchange (base: string, pieces: readonly string[], done: (text: string) => boolean): Promise<{ text: string, closed: boolean }> {
  const { hostname, port } = new URL(base)
  const socket = net.connect(Number(port), hostname)
  await once(socket, 'connect')
  let text = ''
  let closed = false
  const finished = new Promise<void>((resolve) => {
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1')
      if (done(text)) resolve()
    })
    socket.on('close', () => {
      closed = true
      resolve()
    })
    socket.on('error', () => resolve())
  })
  for (const piece of pieces) {
    socket.write(piece)
    await new Promise((resolve) => setTimeout(resolve, 30))
  }
  const timer = setTimeout(() => socket.destroy(), 5000)
  await finished
  clearTimeout(timer)
  socket.destroy()
  return { text, closed }
}

interface RawResponse { status: string, headers: Record<string, string>, body: string }

/** Splits a byte stream of responses with Content-Length bodies (HEAD: `bodiless`). */
function parseResponses (text: string, bodiless = false): RawResponse[] {
  const out: RawResponse[] = []
  let at = 0
  while (at < text.length) {
    const end = text.indexOf('\r\n\r\n', at)
    if (end < 0) break
    const [status = '', ...lines] = text.slice(at, end).split('\r\n')
    const headers: Record<string, string> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
    }
    const length = bodiless ? 0 : Number(headers['content-length'] ?? 0)
    out.push({ status, headers, body: text.slice(end + 4, end + 4 + length) })
    at = end + 4 + length
  }
  return out
}

/** What must match between two answers: all but Date and the connection-management fields; tokens masked (they are checked apart). */
function comparable (r: RawResponse): RawResponse {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(r.headers)) {
    if (name === 'date' || name === 'connection' || name === 'keep-alive') continue
    headers[name] = name === 'location' ? value.replace(/\/t\/[^/]+\//, '/t/TOKEN/') : value
  }
  return { status: r.status, headers, body: r.body }
}

t.test('the fast path and node:http give the same answers and log the same decisions', async (t) => {
  const cp = await startTestControlPlane(t)
  const verifier = new TokenVerifier([TEST_TOKEN_KEY])
  const request = (method: string, path: string, ip: string): string => `${method} /v1/steer${path} HTTP/1.1\r\nHost: cp.test\r\nX-Forwarded-For: ${ip}\r\nConnection: close\r\n\r\n`
  const cases: Array<[string, string, string, string]> = [
    ['302', 'GET', '/vod/x/master.m3u8?start=10&format=m3u8', GB],
    ['302 HEAD', 'HEAD', '/vod/x/master.m3u8', US],
    ['451', 'GET', '/vod/uk-only/master.m3u8', DE],
    ['451 HEAD', 'HEAD', '/vod/uk-only/master.m3u8', UNKNOWN],
    ['400', 'GET', '/vod/../etc/passwd', GB],
  ]
  const decisions = async (): Promise<number> => await cp.cp.metrics.decisions.value({})
  for (const [label, method, path, ip] of cases) {
    const decided = await decisions()
    const bytes = request(method, path, ip)
    // in one segment: the fast path answers; split mid-head: the front hands the connection to node:http
    const fast = await rawExchange(cp.cp.url, [bytes], () => false)
    const slow = await rawExchange(cp.cp.url, [bytes.slice(0, 20), bytes.slice(20)], () => false)
    const [a] = parseResponses(fast.text, method === 'HEAD')
    const [b] = parseResponses(slow.text, method === 'HEAD')
    t.ok(a !== undefined && b !== undefined, `${label}: both answered`)
    if (a === undefined || b === undefined) continue
    t.same(comparable(a), comparable(b), `${label}: same status, fields and body`)
    t.match(a.status, new RegExp(`^HTTP/1\\.1 ${label.slice(0, 3)} `))
    t.equal(a.headers['connection'], 'close', `${label}: Connection: close honoured by the fast path`)
    if (label.startsWith('302')) {
      for (const r of [a, b]) {
        const token = /\/t\/([^/]+)\//.exec(r.headers['location'] ?? '')?.[1] ?? ''
        t.ok(verifier.verify(token, { nowMs: Date.now(), path: path.split('?')[0]! }).ok, `${label}: a valid token`)
      }
    }
    t.equal(await decisions(), decided + 2, `${label}: both decisions counted`)
    // the first of a pair may be a decision-cache miss, the second a hit; and the pair may straddle
    // the token issuer's expiry bucket, which signs a new token (another sid) for the second
    const [logA, logB] = cp.logs.filter((l) => l['msg'] === 'steer').slice(-2).map((l) => ({ ...l, ms: 0, time: 0, cache: l['cache'] === 'none' ? 'none' : 'any', ...(l['sid'] === undefined ? {} : { sid: typeof l['sid'] }) }))
    t.same(logA, logB, `${label}: the same decision log line`)
  }
  const metrics = (await fetchRaw(`${cp.cp.url}/metrics`)).body.toString()
  t.match(metrics, /streamedge_cp_fast_path_requests_total\{role="control-plane",node="cp-test"\} 5\n/, 'five answered by the fast path')
  t.match(metrics, /streamedge_cp_fast_path_handoffs_total\{role="control-plane",node="cp-test"\} [5-9]\n/, 'five (and the metrics request) handed off')
})

t.test('after a request the fast path hands to node:http, the same keep-alive connection keeps steering', async (t) => {
  const cp = await startTestControlPlane(t)
  const head = (path: string, close = false): string => `GET /v1/steer${path} HTTP/1.1\r\nHost: cp.test\r\nX-Forwarded-For: ${GB}\r\n${close ? 'Connection: close\r\n' : ''}\r\n`
  const { text } = await rawExchange(cp.cp.url, [
    head('/vod/x/master.m3u8'),
    head('/vod/x/master.m3u8?format=json'),
    head('/vod/x/master.m3u8'),
    head('/vod/y/master.m3u8', true),
  ], () => false)
  const responses = parseResponses(text)
  t.same(responses.map((r) => r.status), ['HTTP/1.1 302 Found', 'HTTP/1.1 200 OK', 'HTTP/1.1 302 Found', 'HTTP/1.1 302 Found'], 'in order, on one connection')
  t.equal(responses[0]?.headers['keep-alive'], undefined, 'the first from the fast path')
  t.match(JSON.parse(responses[1]?.body ?? '{}'), { decision: 'redirect', node: { id: 'edge-lon' } }, 'the explained answer from node:http')
  t.match(responses[2]?.headers['keep-alive'], /timeout=/, 'node:http keeps the connection from then on')
  t.match(responses[2]?.headers['location'], /\/vod\/x\/master\.m3u8$/)
  t.match(responses[3]?.headers['location'], /\/vod\/y\/master\.m3u8$/)
  t.match(cp.logs.filter((l) => l['msg'] === 'steer').slice(-4), [{ outcome: 'redirect' }, { outcome: 'explained' }, { outcome: 'redirect' }, { outcome: 'redirect' }])
})

t.test('closing the control plane closes keep-alive connections the fast path holds', async (t) => {
  const cp = await startTestControlPlane(t)
  const { hostname, port } = new URL(cp.cp.url)
  const socket = net.connect(Number(port), hostname)
  await once(socket, 'connect')
  const closed = once(socket, 'close')
  socket.on('error', () => {})
  socket.write(`GET /v1/steer/vod/x/master.m3u8 HTTP/1.1\r\nHost: cp.test\r\nX-Forwarded-For: ${GB}\r\n\r\n`)
  await once(socket, 'data')
  const started = Date.now()
  await cp.cp.close()
  await closed
  t.ok(Date.now() - started < 4000, 'an idle keep-alive connection does not hold the shutdown for the grace period')
})
