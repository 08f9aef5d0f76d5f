/**
 * RFC 9111 §4.1 (calculating cache keys with Vary) through the edge: variants keyed by
 * the listed request headers (normalised), Vary: * never reused, and a newer response
 * with another Vary replacing the stored variants. The origin echoes the request
 * headers it varies on into the body, so a wrong variant shows up as a wrong body.
 */
import t from 'tap'
import type { OriginRequest, ScriptedResponse } from '../../helpers/scripted-origin.ts'
import { ok, play, startRig } from './harness.ts'

const PATH = '/vary/object.txt'

/** An origin answer that varies on `names` and echoes their values. */
function echo (vary: string | string[], names: readonly string[]): (req: OriginRequest) => ScriptedResponse {
  return (req) => ok(
    { 'cache-control': 'max-age=100', vary },
    names.map((name) => `${name}=${String(req.headers[name] ?? '-')}`).join(';'),
  )
}

t.test('RFC 9111 §4.1: Vary selects the stored variant by the listed request header', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, echo('Accept-Language', ['accept-language']))
  await play(t, rig, PATH, [
    { headers: { 'accept-language': 'en' }, expect: { status: 200, body: 'accept-language=en', cacheStatus: { fwd: 'uri-miss', stored: true }, originRequests: 1 } },
    { headers: { 'accept-language': 'fr' }, expect: { status: 200, body: 'accept-language=fr', cacheStatus: { fwd: 'vary-miss', 'fwd-status': '200', stored: true }, originRequests: 2 } },
    { advance: 1, headers: { 'accept-language': 'en' }, expect: { status: 200, body: 'accept-language=en', hit: true, headers: { vary: 'Accept-Language' }, originRequests: 2 } },
    { headers: { 'accept-language': 'fr' }, expect: { status: 200, body: 'accept-language=fr', hit: true, originRequests: 2 } },
    // An absent header only matches an absent header.
    { expect: { status: 200, body: 'accept-language=-', cacheStatus: { fwd: 'vary-miss' }, originRequests: 3 } },
    { expect: { status: 200, body: 'accept-language=-', hit: true, originRequests: 3 } },
    { headers: { 'accept-language': 'en' }, expect: { body: 'accept-language=en', hit: true, originRequests: 3 } },
  ])
})

t.test('RFC 9111 §4.1: selecting header values are normalised (whitespace around list commas)', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, echo('Accept-Encoding', ['accept-encoding']))
  await play(t, rig, PATH, [
    { headers: { 'accept-encoding': 'gzip, br' }, expect: { status: 200, body: 'accept-encoding=gzip, br', originRequests: 1 } },
    { headers: { 'accept-encoding': 'gzip,br' }, expect: { status: 200, body: 'accept-encoding=gzip, br', hit: true, originRequests: 1 } },
    { headers: { 'accept-encoding': 'gzip ,  br' }, expect: { status: 200, body: 'accept-encoding=gzip, br', hit: true, originRequests: 1 } },
    { headers: { 'accept-encoding': 'br' }, expect: { status: 200, body: 'accept-encoding=br', cacheStatus: { fwd: 'vary-miss' }, originRequests: 2 } },
  ])
})

t.test('RFC 9111 §4.1: Vary field names are case-insensitive', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, echo('ACCEPT-LANGUAGE', ['accept-language']))
  await play(t, rig, PATH, [
    { headers: { 'accept-language': 'en' }, expect: { body: 'accept-language=en', originRequests: 1 } },
    { headers: { 'accept-language': 'fr' }, expect: { body: 'accept-language=fr', hit: false, originRequests: 2 } },
    { headers: { 'accept-language': 'en' }, expect: { body: 'accept-language=en', hit: true, originRequests: 2 } },
  ])
})

for (const vary of ['Accept-Language, X-Device', ['Accept-Language', 'X-Device']]) {
  t.test(`RFC 9111 §4.1: every listed header must match (Vary on ${Array.isArray(vary) ? 'two field lines' : 'one line'})`, async (t) => {
    const rig = await startRig(t)
    rig.origin.script(PATH, echo(vary, ['accept-language', 'x-device']))
    await play(t, rig, PATH, [
      { headers: { 'accept-language': 'en', 'x-device': 'phone' }, expect: { body: 'accept-language=en;x-device=phone', originRequests: 1 } },
      { headers: { 'accept-language': 'en', 'x-device': 'tv' }, expect: { body: 'accept-language=en;x-device=tv', cacheStatus: { fwd: 'vary-miss' }, originRequests: 2 } },
      { headers: { 'accept-language': 'fr', 'x-device': 'phone' }, expect: { body: 'accept-language=fr;x-device=phone', cacheStatus: { fwd: 'vary-miss' }, originRequests: 3 } },
      { headers: { 'accept-language': 'en', 'x-device': 'phone' }, expect: { body: 'accept-language=en;x-device=phone', hit: true, originRequests: 3 } },
      { headers: { 'accept-language': 'en' }, expect: { body: 'accept-language=en;x-device=-', hit: false, originRequests: 4 } },
    ])
  })
}

for (const vary of ['*', 'Accept-Language, *']) {
  t.test(`RFC 9111 §4.1: a stored response with Vary: ${vary} never matches`, async (t) => {
    const rig = await startRig(t)
    rig.origin.script(PATH, echo(vary, ['accept-language']))
    const steps = Array.from({ length: 3 }, (_, i) => ({
      headers: { 'accept-language': 'en' },
      expect: { status: 200, body: 'accept-language=en', hit: false, cacheStatus: { fwd: /^(uri-miss|bypass)$/ }, notCacheStatus: ['stored'], originRequests: i + 1 },
    }))
    await play(t, rig, PATH, steps)
  })
}

t.test('RFC 9111 §4.1: a newer response with a different Vary replaces the stored variants', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH,
    echo('Accept-Language', ['accept-language']),
    echo('Accept-Language', ['accept-language']),
    echo('X-Device', ['x-device']))
  await play(t, rig, PATH, [
    { headers: { 'accept-language': 'en' }, expect: { body: 'accept-language=en', originRequests: 1 } },
    { headers: { 'accept-language': 'fr' }, expect: { body: 'accept-language=fr', originRequests: 2 } },
    // A third language misses; the origin now varies on X-Device instead.
    { advance: 1, headers: { 'accept-language': 'de' }, expect: { body: 'x-device=-', originRequests: 3 } },
    // The old Accept-Language variants are gone: the only stored response (most recent, X-Device absent) is chosen.
    { headers: { 'accept-language': 'en' }, expect: { body: 'x-device=-', hit: true, headers: { vary: 'X-Device' }, originRequests: 3 } },
    { headers: { 'accept-language': 'fr' }, expect: { body: 'x-device=-', hit: true, originRequests: 3 } },
    { headers: { 'x-device': 'tv' }, expect: { body: 'x-device=tv', cacheStatus: { fwd: 'vary-miss' }, originRequests: 4 } },
  ])
})

t.test('RFC 9111 §4.1: a stale variant is validated with its own selecting headers, and the others stay', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, (req) => {
    const lang = String(req.headers['accept-language'] ?? '-')
    const etag = `"${lang}"`
    if (req.headers['if-none-match'] === etag) return { status: 304, headers: { 'cache-control': 'max-age=100', vary: 'Accept-Language', etag } }
    return ok({ 'cache-control': 'max-age=100', vary: 'Accept-Language', etag }, `lang=${lang}`)
  })
  await play(t, rig, PATH, [
    { headers: { 'accept-language': 'en' }, expect: { body: 'lang=en', originRequests: 1 } },
    { advance: 50, headers: { 'accept-language': 'fr' }, expect: { body: 'lang=fr', originRequests: 2 } },
    { advance: 60, headers: { 'accept-language': 'en' }, expect: { status: 200, body: 'lang=en', cacheStatus: { fwd: 'stale', 'fwd-status': '304' }, originRequests: 3 } },
    { headers: { 'accept-language': 'fr' }, expect: { status: 200, body: 'lang=fr', hit: true, originRequests: 3 } },
  ])
  const validation = rig.origin.last(PATH)
  t.equal(validation?.headers['accept-language'], 'en')
  t.equal(validation?.headers['if-none-match'], '"en"')
})
