/**
 * HEAD through the edge: answered from a stored GET (RFC 9110 §9.3.2), Range ignored
 * on HEAD (RFC 9110 §14.2), and a HEAD response freshening or invalidating the
 * stored GET (RFC 9111 §4.3.5).
 */
import t from 'tap'
import type { OriginRequest, ScriptedResponse } from '../../helpers/scripted-origin.ts'
import { checkResponse, ok, play, startRig } from './harness.ts'

const PATH = '/head/object.txt'

t.test('RFC 9110 §9.3.2: HEAD is answered from the stored GET: same header fields, no content', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100', etag: '"v1"', 'x-custom': 'yes', 'content-type': 'text/x-thing' }, 'twelve bytes'))
  const [get] = await play(t, rig, PATH, [{ expect: { status: 200, body: 'twelve bytes', originRequests: 1 } }])
  rig.clock.advance(5)
  const head = await rig.fetch(PATH, { method: 'HEAD' })
  checkResponse(t, head, {
    status: 200,
    body: '',
    hit: true,
    headers: { 'content-length': '12', etag: '"v1"', 'x-custom': 'yes', 'content-type': 'text/x-thing', 'cache-control': 'max-age=100', age: '5', date: get?.headers.date ?? null },
  }, 'HEAD')
  t.equal(rig.origin.count(PATH), 1, 'the origin saw only the GET')
})

t.test('RFC 9110 §9.3.2: a HEAD miss answers with the GET\'s metadata, and a later GET gets the whole body', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100', etag: '"v1"' }, 'twelve bytes'))
  const head = await rig.fetch(PATH, { method: 'HEAD' })
  checkResponse(t, head, { status: 200, body: '', headers: { 'content-length': '12', etag: '"v1"' } }, 'HEAD miss')
  const get = await rig.fetch(PATH)
  checkResponse(t, get, { status: 200, body: 'twelve bytes', headers: { 'content-length': '12' } }, 'GET after HEAD')
})

for (const range of ['bytes=0-3', 'bytes=0-1, 6-7']) {
  t.test(`RFC 9110 §14.2: Range is ignored on HEAD (${range})`, async (t) => {
    const rig = await startRig(t)
    rig.origin.script(PATH, ok({ 'cache-control': 'max-age=100', etag: '"v1"' }, 'twelve bytes'))
    await rig.fetch(PATH)
    const head = await rig.fetch(PATH, { method: 'HEAD', headers: { range } })
    checkResponse(t, head, { status: 200, body: '', hit: true, headers: { 'content-length': '12', 'content-range': null } }, 'HEAD with Range')
  })
}

/**
 * An origin whose first GET says max-age=10 for "v1"; afterwards it holds `later` and
 * answers HEAD with its metadata, a matching If-None-Match with 304, any GET with 200.
 */
function evolving (later: { etag?: string, body: string, xVersion: string }): (req: OriginRequest) => ScriptedResponse {
  return (req) => {
    const headers: Record<string, string> = { 'cache-control': 'max-age=100', 'x-version': later.xVersion }
    if (later.etag !== undefined) headers.etag = later.etag
    if (req.index === 0) return ok({ 'cache-control': 'max-age=10', 'x-version': '1', ...(later.etag === undefined ? {} : { etag: '"v1"' }) }, 'v1')
    if (req.method === 'GET' && later.etag !== undefined && req.headers['if-none-match'] === later.etag) return { status: 304, headers }
    return ok(headers, later.body)
  }
}

t.test('RFC 9111 §4.3.5: a HEAD response with matching validators freshens the stored GET and updates its fields', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, evolving({ etag: '"v1"', body: 'v1', xVersion: '2' }))
  await rig.fetch(PATH)
  rig.clock.advance(20)
  const head = await rig.fetch(PATH, { method: 'HEAD' })
  checkResponse(t, head, { status: 200, body: '', headers: { 'content-length': '2', etag: '"v1"', 'x-version': '2' } }, 'HEAD on the stale GET')
  t.equal(rig.origin.count(PATH), 2, 'one request to the origin for the HEAD (a HEAD, or a conditional GET)')
  rig.clock.advance(5)
  const get = await rig.fetch(PATH)
  checkResponse(t, get, { status: 200, body: 'v1', hit: true, headers: { 'x-version': '2', 'cache-control': 'max-age=100' } }, 'GET after the HEAD')
  t.equal(rig.origin.count(PATH), 2)
  const refetches = rig.origin.requestsTo(PATH, 'GET').filter((r) => r.index > 0 && r.headers['if-none-match'] === undefined)
  t.equal(refetches.length, 0, 'the body was never fetched again')
})

t.test('RFC 9111 §4.3.5: a HEAD response with another ETag makes the stored GET stale', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, evolving({ etag: '"v2"', body: 'v2', xVersion: '2' }))
  await rig.fetch(PATH)
  rig.clock.advance(20)
  const head = await rig.fetch(PATH, { method: 'HEAD' })
  checkResponse(t, head, { status: 200, body: '', headers: { etag: '"v2"' } }, 'HEAD')
  rig.clock.advance(1)
  const get = await rig.fetch(PATH)
  checkResponse(t, get, { status: 200, body: 'v2', headers: { etag: '"v2"' } }, 'the GET never gets the old body')
})

t.test('RFC 9111 §4.3.5: without validators, a HEAD response with another Content-Length makes the stored GET stale', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, evolving({ body: 'longer body v2', xVersion: '2' }))
  await rig.fetch(PATH)
  rig.clock.advance(20)
  const head = await rig.fetch(PATH, { method: 'HEAD' })
  checkResponse(t, head, { status: 200, body: '', headers: { 'content-length': '14' } }, 'HEAD')
  rig.clock.advance(1)
  const get = await rig.fetch(PATH)
  checkResponse(t, get, { status: 200, body: 'longer body v2', headers: { 'content-length': '14' } }, 'the GET never gets the old body')
})
