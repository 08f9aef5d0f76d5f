/**
 * The purge endpoint: `POST /admin/purge` with `Authorization: Bearer <adminToken>` and
 * `{ "url": ... }` (every variant of one URL) or `{ "prefix": ... }`. Checks the
 * answers (200 `{ purged }`, 401, 400, 404 when disabled), that purged objects go to the
 * origin again while others stay, that purges survive a restart on the same cache
 * directory (objects whose disk write was still in flight included), and the
 * `streamedge_purges_total{kind}` counter. The origin never sees a purge request.
 */
import t, { type Test } from 'tap'
import { fetchRaw, type Fetched } from '../../helpers/http-client.ts'
import type { OriginRequest, ScriptedResponse } from '../../helpers/scripted-origin.ts'
import { isHit, ok, settle, startEdge, startRig, text, type Rig } from './harness.ts'

const TOKEN = 'purge-secret-token'

/** Every path answers a cacheable body naming the path and how often it was asked. */
function anyPath (req: OriginRequest): ScriptedResponse {
  const vary = req.path.startsWith('/vod/varied') ? { vary: 'Accept-Language' } : {}
  return ok({ 'cache-control': 'max-age=600', ...vary }, `${req.path} #${req.index}`)
}

/** A rig whose origin answers every path; `adminToken: null` leaves the purge endpoint off. */
async function purgeRig (t: Test, adminToken: string | null = TOKEN): Promise<Rig> {
  return await startRig(t, adminToken === null ? {} : { adminToken }, { fallback: anyPath })
}

function purge (rig: { edge: { url: string } }, body: unknown, authorization: string | null = `Bearer ${TOKEN}`): Promise<Fetched> {
  return fetchRaw(rig.edge.url + '/admin/purge', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization === null ? {} : { authorization }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

function purgedCount (t: Test, res: Fetched): number | undefined {
  t.equal(res.status, 200, `purge answered 200 (${text(res)})`)
  t.match(String(res.headers['content-type']), /^application\/json/, 'JSON answer')
  try {
    const parsed = JSON.parse(text(res)) as { purged?: unknown }
    t.type(parsed.purged, 'number', 'has a numeric "purged"')
    return typeof parsed.purged === 'number' ? parsed.purged : undefined
  } catch {
    t.fail(`not JSON: ${text(res)}`)
    return undefined
  }
}

/** GETs `path` (with optional headers) twice so it is stored and known to hit. */
async function cache (t: Test, rig: Rig, path: string, headers: Record<string, string> = {}): Promise<void> {
  await rig.fetch(path, { headers })
  t.ok(isHit(await rig.fetch(path, { headers })), `${path} ${JSON.stringify(headers)} cached`)
}

async function isCached (rig: Rig, path: string, headers: Record<string, string> = {}): Promise<boolean> {
  const before = rig.origin.count(path)
  const res = await rig.fetch(path, { headers })
  return isHit(res) && rig.origin.count(path) === before
}

t.test('purge by URL: every variant of that URL goes, other URLs stay', async (t) => {
  const rig = await purgeRig(t)
  await cache(t, rig, '/vod/varied/a.txt', { 'accept-language': 'en' })
  await cache(t, rig, '/vod/varied/a.txt', { 'accept-language': 'fr' })
  await cache(t, rig, '/vod/varied/b.txt')
  await cache(t, rig, '/vod/varied/a.txt.bak')
  const count = purgedCount(t, await purge(rig, { url: '/vod/varied/a.txt' }))
  t.ok(count !== undefined && count >= 1, `purged ${String(count)}`)
  await settle()
  t.notOk(await isCached(rig, '/vod/varied/a.txt', { 'accept-language': 'en' }), 'en variant purged')
  t.notOk(await isCached(rig, '/vod/varied/a.txt', { 'accept-language': 'fr' }), 'fr variant purged')
  t.ok(await isCached(rig, '/vod/varied/b.txt'), 'another URL stays')
  t.ok(await isCached(rig, '/vod/varied/a.txt.bak'), 'a URL purge is exact, not a prefix')
  t.equal(rig.origin.count('/admin/purge'), 0, 'the origin never sees the purge')
})

t.test('purge by URL: the query is part of the URL, normalised like the cache key', async (t) => {
  const rig = await purgeRig(t)
  await cache(t, rig, '/vod/q.txt?a=1&b=2')
  await cache(t, rig, '/vod/q.txt')
  t.equal(purgedCount(t, await purge(rig, { url: '/vod/q.txt?b=2&a=1' })), 1)
  await settle()
  t.notOk(await isCached(rig, '/vod/q.txt?a=1&b=2'), 'the query URL is purged')
  t.ok(await isCached(rig, '/vod/q.txt'), 'the same path without a query stays')
})

t.test('purge by prefix: every URL under it goes, others stay', async (t) => {
  const rig = await purgeRig(t)
  const under = ['/vod/title/master.txt', '/vod/title/720p/seg-1.txt', '/vod/title/720p/seg-2.txt?x=1']
  const outside = ['/vod/title2/seg-1.txt', '/vod/other/seg-1.txt', '/vod/titl.txt']
  for (const path of [...under, ...outside]) await cache(t, rig, path)
  t.equal(purgedCount(t, await purge(rig, { prefix: '/vod/title/' })), under.length, 'purged counts the objects under the prefix')
  await settle()
  for (const path of under) t.notOk(await isCached(rig, path), `${path} purged`)
  for (const path of outside) t.ok(await isCached(rig, path), `${path} stays`)
})

t.test('purge auth: 401 without a token or with a wrong one, and nothing is purged', async (t) => {
  const rig = await purgeRig(t)
  const path = '/vod/auth.txt'
  await cache(t, rig, path)
  for (const authorization of [null, 'Bearer wrong-token', `Basic ${TOKEN}`, TOKEN, `Bearer ${TOKEN}x`, 'Bearer ']) {
    const res = await purge(rig, { url: path }, authorization)
    t.equal(res.status, 401, `authorization ${String(authorization)} → 401`)
  }
  t.ok(await isCached(rig, path), 'nothing was purged')
  t.equal(purgedCount(t, await purge(rig, { url: path })), 1, 'the right token purges')
  t.equal(rig.origin.count('/admin/purge'), 0, 'the origin never sees the purge')
})

t.test('RFC 9110 §11.1: the authentication scheme is case-insensitive ("bearer")', async (t) => {
  const rig = await purgeRig(t)
  const path = '/vod/scheme.txt'
  await cache(t, rig, path)
  t.equal(purgedCount(t, await purge(rig, { url: path }, `bearer ${TOKEN}`)), 1)
})

t.test('purge: 400 for a body that is not a purge request (nothing purged)', async (t) => {
  const rig = await purgeRig(t)
  const path = '/vod/bad.txt'
  await cache(t, rig, path)
  for (const body of ['not json', '{}', '[]', 'null', '{"url": 5}', '{"prefix": 7}', '{"url": ["/vod/bad.txt"]}']) {
    const res = await purge(rig, body)
    t.equal(res.status, 400, `${body} → 400`)
  }
  t.ok(await isCached(rig, path), 'nothing was purged')
})

t.test('purge: 404 when no adminToken is configured, and the request never reaches the origin', async (t) => {
  const rig = await purgeRig(t, null)
  const path = '/vod/open.txt'
  await cache(t, rig, path)
  for (const authorization of [null, `Bearer ${TOKEN}`, 'Bearer ']) {
    const res = await purge(rig, { url: path }, authorization)
    t.equal(res.status, 404, `authorization ${String(authorization)} → 404`)
  }
  t.ok(await isCached(rig, path), 'nothing was purged')
  t.equal(rig.origin.count('/admin/purge'), 0, 'the origin never sees the purge')
})

t.test('purges are counted in streamedge_purges_total{kind}', async (t) => {
  const rig = await purgeRig(t)
  await cache(t, rig, '/vod/m/a.txt')
  purgedCount(t, await purge(rig, { url: '/vod/m/a.txt' }))
  purgedCount(t, await purge(rig, { prefix: '/vod/m/' }))
  purgedCount(t, await purge(rig, { prefix: '/vod/n/' }))
  const metrics = text(await fetchRaw(rig.edge.url + '/metrics'))
  t.match(metrics, /streamedge_purges_total\{[^}]*kind="url"[^}]*\} 1\b/, 'one URL purge')
  t.match(metrics, /streamedge_purges_total\{[^}]*kind="prefix"[^}]*\} 2\b/, 'two prefix purges')
})

t.test('purges survive a restart: purged objects never come back, the others do', async (t) => {
  const rig = await purgeRig(t)
  const purgedUrl = '/vod/r/one.txt'
  const purgedByPrefix = ['/vod/gone/a.txt', '/vod/gone/b.txt']
  const kept = ['/vod/r/two.txt', '/vod/keep.txt']
  for (const path of [purgedUrl, ...purgedByPrefix, ...kept]) await cache(t, rig, path)
  await settle()
  purgedCount(t, await purge(rig, { url: purgedUrl }))
  purgedCount(t, await purge(rig, { prefix: '/vod/gone/' }))
  await rig.edge.close()

  const again = await startEdge(t, { origin: rig.origin.url, cacheDir: rig.edge.cacheDir, now: rig.clock.now, adminToken: TOKEN })
  for (const path of [purgedUrl, ...purgedByPrefix]) {
    const before = rig.origin.count(path)
    const res = await fetchRaw(again.url + path)
    t.notOk(isHit(res), `${path}: not served from storage after the restart`)
    t.equal(rig.origin.count(path), before + 1, `${path}: fetched from the origin`)
  }
  for (const path of kept) {
    const res = await fetchRaw(again.url + path)
    t.ok(isHit(res), `${path}: still stored after the restart`)
    t.equal(text(res), `${path} #0`)
  }
})

t.test('an object filled again after its purge is stored normally and survives a restart', async (t) => {
  const rig = await purgeRig(t)
  const url = '/vod/r/three.txt'
  const byPrefix = '/vod/p/four.txt'
  await cache(t, rig, url)
  await cache(t, rig, byPrefix)
  await settle()
  purgedCount(t, await purge(rig, { url }))
  purgedCount(t, await purge(rig, { prefix: '/vod/p/' }))
  for (const path of [url, byPrefix]) {
    t.equal(text(await rig.fetch(path)), `${path} #1`, `${path} filled again after its purge`)
    t.ok(isHit(await rig.fetch(path)), `${path} stored again`)
  }
  await settle()
  await rig.edge.close()
  const again = await startEdge(t, { origin: rig.origin.url, cacheDir: rig.edge.cacheDir, now: rig.clock.now, adminToken: TOKEN })
  for (const path of [url, byPrefix]) {
    const res = await fetchRaw(again.url + path)
    t.ok(isHit(res), `${path}: the copy filled after the purge survives the restart`)
    t.equal(text(res), `${path} #1`)
  }
})

t.test('purges survive a restart even for objects whose disk write was still in flight at purge time', async (t) => {
  const rig = await purgeRig(t)
  const paths = Array.from({ length: 8 }, (_, i) => `/vod/racy/obj-${i}.txt`)
  // Fill and purge at once: the disk writes of these fills may land after the purge.
  await Promise.all(paths.map((path) => rig.fetch(path)))
  purgedCount(t, await purge(rig, { prefix: '/vod/racy/' }))
  await settle()
  await rig.edge.close()
  const again = await startEdge(t, { origin: rig.origin.url, cacheDir: rig.edge.cacheDir, now: rig.clock.now })
  for (const path of paths) {
    const res = await fetchRaw(again.url + path)
    t.notOk(isHit(res), `${path} never comes back`)
    t.equal(text(res), `${path} #1`)
  }
})
