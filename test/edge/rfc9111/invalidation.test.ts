/**
 * RFC 9111 §4.4 invalidation through the edge: a non-error response to an unsafe
 * method invalidates the target URI and the same-origin Location and Content-Location
 * URIs; error responses invalidate nothing; another origin's URIs are never touched.
 * "Invalidated" is observed as: the next GET goes to the origin again.
 */
import t, { type Test } from 'tap'
import type { OriginRequest, ScriptedResponse } from '../../helpers/scripted-origin.ts'
import { cacheStatus, isHit, ok, settle, startRig, text, type Rig } from './harness.ts'

/** GET/HEAD: a cacheable object naming its path; other methods: `unsafe(req)`. */
function resource (unsafe: (req: OriginRequest) => ScriptedResponse = () => ok({}, 'done')): (req: OriginRequest) => ScriptedResponse {
  return (req) => req.method === 'GET' || req.method === 'HEAD'
    ? ok({ 'cache-control': 'max-age=100' }, `object ${req.path}`)
    : unsafe(req)
}

/** Fills `path` and checks that a second GET is a hit. */
async function cache (t: Test, rig: Rig, path: string): Promise<void> {
  await rig.fetch(path)
  const hit = await rig.fetch(path)
  t.ok(isHit(hit), `${path} is cached before the unsafe request`)
}

/** True when the next GET for `path` is answered from storage. */
async function stillCached (rig: Rig, path: string): Promise<boolean> {
  const before = rig.origin.count(path, 'GET')
  const res = await rig.fetch(path)
  return isHit(res) && rig.origin.count(path, 'GET') === before && text(res) === `object ${path}`
}

for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
  for (const status of [200, 201, 204, 303]) {
    t.test(`RFC 9111 §4.4: ${method} answered ${status} invalidates the target URI`, async (t) => {
      const rig = await startRig(t)
      const path = '/inv/doc'
      rig.origin.script(path, resource(() => ok(status === 303 ? { location: '/elsewhere' } : {}, status === 204 ? '' : 'done', status)))
      await cache(t, rig, path)
      await settle()
      const withBody = method !== 'DELETE'
      const unsafe = await rig.fetch(path, { method, ...(withBody ? { body: 'payload', headers: { 'content-type': 'text/plain' } } : {}) })
      t.equal(unsafe.status, status)
      t.equal(cacheStatus(unsafe)?.fwd, 'method', 'RFC 9211: fwd=method')
      t.equal(cacheStatus(unsafe)?.['fwd-status'], String(status))
      t.equal(rig.origin.last(path)?.method, method)
      if (withBody) t.equal(rig.origin.last(path)?.body.toString(), 'payload', 'the request body reached the origin intact')
      await settle()
      t.notOk(await stillCached(rig, path), 'the next GET goes to the origin')
      t.ok(await stillCached(rig, path), 'and is stored again')
    })
  }
}

t.test('RFC 9111 §4.4: an object invalidated while its disk write is still in flight never comes back', async (t) => {
  const rig = await startRig(t)
  const path = '/inv/fresh-fill'
  rig.origin.script(path, resource())
  await rig.fetch(path)
  const unsafe = await rig.fetch(path, { method: 'POST', body: 'payload' })
  t.equal(unsafe.status, 200)
  await settle()
  t.notOk(await stillCached(rig, path), 'the next GET goes to the origin')
})

for (const status of [400, 404, 409, 500, 503]) {
  t.test(`RFC 9111 §4.4: POST answered ${status} (an error) invalidates nothing`, async (t) => {
    const rig = await startRig(t)
    const path = '/inv/doc'
    rig.origin.script(path, resource(() => ok({}, 'failed', status)))
    await cache(t, rig, path)
    const unsafe = await rig.fetch(path, { method: 'POST', body: 'payload' })
    t.equal(unsafe.status, status)
    await settle()
    t.ok(await stillCached(rig, path), 'the stored response is still used')
  })
}

t.test('RFC 9111 §4.4: responses to unsafe methods are never stored or reused', async (t) => {
  const rig = await startRig(t)
  const path = '/inv/form'
  rig.origin.script(path, ok({ 'cache-control': 'max-age=100' }, 'created', 201))
  for (let i = 1; i <= 2; i++) {
    const res = await rig.fetch(path, { method: 'POST', body: `n=${i}` })
    t.equal(res.status, 201)
    t.equal(cacheStatus(res)?.fwd, 'method')
    t.equal(rig.origin.count(path, 'POST'), i)
  }
})

const targets: Array<[string, (rig: Rig, path: string) => Record<string, string>, boolean]> = [
  ['a same-origin Location (path form) is invalidated', (_rig, path) => ({ location: path }), true],
  ['a same-origin Content-Location (path form) is invalidated', (_rig, path) => ({ 'content-location': path }), true],
  ['an absolute Location with the request\'s host is invalidated', (rig, path) => ({ location: rig.edge.url + path }), true],
  ['an absolute Content-Location with the request\'s host is invalidated', (rig, path) => ({ 'content-location': rig.edge.url + path }), true],
  ['a Location on another origin is not invalidated', (_rig, path) => ({ location: `http://other.example${path}` }), false],
  ['a Content-Location on another origin is not invalidated', (_rig, path) => ({ 'content-location': `https://other.example${path}` }), false],
]

for (const [what, headers, invalidated] of targets) {
  t.test(`RFC 9111 §4.4: ${what}`, async (t) => {
    const rig = await startRig(t)
    const item = '/inv/items/1'
    const bystander = '/inv/items/2'
    rig.origin.script('/inv/items', resource(() => ok(headers(rig, item), 'created', 201)))
    rig.origin.script(item, resource())
    rig.origin.script(bystander, resource())
    await cache(t, rig, item)
    await cache(t, rig, bystander)
    await settle()
    const created = await rig.fetch('/inv/items', { method: 'POST', body: 'new item' })
    t.equal(created.status, 201)
    await settle()
    t.equal(await stillCached(rig, item), !invalidated, invalidated ? `${item} goes to the origin again` : `${item} is still served from storage`)
    t.ok(await stillCached(rig, bystander), 'URIs not named in the response are untouched')
  })
}

t.test('RFC 9111 §4.4 / §4.1: invalidation removes every stored variant of the URI', async (t) => {
  const rig = await startRig(t)
  const path = '/inv/varied'
  rig.origin.script(path, (req) => req.method === 'GET'
    ? ok({ 'cache-control': 'max-age=100', vary: 'Accept-Language' }, `lang=${String(req.headers['accept-language'])}`)
    : ok({}, 'done'))
  for (const lang of ['en', 'fr']) {
    await rig.fetch(path, { headers: { 'accept-language': lang } })
    t.ok(isHit(await rig.fetch(path, { headers: { 'accept-language': lang } })), `${lang} variant cached`)
  }
  await rig.fetch(path, { method: 'PUT', body: 'x' })
  await settle()
  for (const lang of ['en', 'fr']) {
    const res = await rig.fetch(path, { headers: { 'accept-language': lang } })
    t.notOk(isHit(res), `${lang} variant invalidated`)
    t.equal(text(res), `lang=${lang}`)
  }
  t.equal(rig.origin.count(path, 'GET'), 4)
})

t.test('RFC 9111 §4.4: the query is part of the invalidated URI (normalised like the cache key)', async (t) => {
  const rig = await startRig(t)
  rig.origin.script('/inv/list', resource())
  for (const path of ['/inv/list?a=1&b=2', '/inv/list?page=2', '/inv/list']) await cache(t, rig, path)
  await rig.fetch('/inv/list?b=2&a=1', { method: 'POST', body: 'x' })
  await settle()
  t.notOk(await stillCached(rig, '/inv/list?a=1&b=2'), 'the same URI with its parameters in another order is invalidated')
  t.ok(await stillCached(rig, '/inv/list?page=2'), 'another query of the same path stays')
  t.ok(await stillCached(rig, '/inv/list'), 'the path without a query stays')
})
