import t from 'tap'
import { makeCacheKey } from '../../../edge/cache/cache-key.ts'
import { isCdnError } from '../../../lib/errors.ts'

const opts = { stripQueryParams: new Set(['se_token', 'utm_source']) }
const key = (p: string): string => makeCacheKey(p, opts)

t.test('plain paths come back unchanged (and unallocated)', async (t) => {
  for (const p of ['/', '/vod/t1/master.m3u8', '/vod/t1/720p/seg_00001.ts', '/a.b/c..d/.e', '/Case/Kept', '/a//b', '/x.']) {
    t.equal(key(p), p, p)
  }
})

t.test('RFC 3986 §6.2.2 percent-encoding normalisation', async (t) => {
  const cases: Array<[string, string]> = [
    ['/%41%62%63', '/Abc'], // unreserved letters decoded, case kept
    ['/seg%5F1%2Ets', '/seg_1.ts'],
    ['/%7euser', '/~user'],
    ['/a%2db', '/a-b'],
    ['/a%2fb', '/a%2Fb'], // reserved stays encoded, hex upper-cased
    ['/a%2Fb', '/a%2Fb'],
    ['/a%20b', '/a%20b'],
    ['/caf%c3%a9', '/caf%C3%A9'],
    ['/100%', '/100%'], // invalid escapes stay as sent
    ['/a%zzb', '/a%zzb'],
    ['/a%4', '/a%4'],
    ['/%2541', '/%2541'], // decoded once only
    ['/%01%1f%7f', '/%01%1F%7F'], // other controls are the origin's business
    ['/a?x=%00%0a', '/a?x=%00%0A'] // the query is not checked for encoded controls
  ]
  for (const [input, expected] of cases) t.equal(key(input), expected, input)
})

t.test('RFC 3986 §5.2.4 dot segments are resolved', async (t) => {
  const cases: Array<[string, string]> = [
    ['/a/b/c/./../../g', '/a/g'], // RFC 3986 §5.2.4 example
    ['/a/../b', '/b'],
    ['/a/./b', '/a/b'],
    ['/./a', '/a'],
    ['/../a', '/a'], // never above the root
    ['/../../../etc/passwd', '/etc/passwd'],
    ['/a/..', '/'],
    ['/a/.', '/a/'],
    ['/a/b/..', '/a/'],
    ['/.', '/'],
    ['/..', '/'],
    ['//a/../b', '//b'],
    ['/a/..b/c', '/a/..b/c'], // not a dot segment
    ['/a/.b', '/a/.b'],
    ['/a/%2e%2e/b', '/b'], // decoded before resolving
    ['/a/%2E/b', '/a/b'],
    ['/a/.%2e/b', '/b'],
    ['/a/..%2Fb', '/a/..%2Fb'], // an encoded slash does not make a segment
    ['/a/../b?x=/../y', '/b?x=/../y'] // the query is not a path
  ]
  for (const [input, expected] of cases) t.equal(key(input), expected, input)
})

t.test('query normalisation', async (t) => {
  const cases: Array<[string, string]> = [
    ['/a?', '/a'], // empty ? dropped
    ['/a?&&', '/a'],
    ['/a?b=2&a=1', '/a?a=1&b=2'], // sorted by name
    ['/a?a=2&b=1&a=1', '/a?a=2&a=1&b=1'], // stable for repeated names
    ['/a?se_token=abc', '/a'], // stripped
    ['/a?x=1&se_token=abc&utm_source=y', '/a?x=1'],
    ['/a?SE_TOKEN=abc', '/a?SE_TOKEN=abc'], // names are case-sensitive
    ['/a?se%5Ftoken=abc', '/a'], // normalised before comparing
    ['/a?se_token', '/a'], // a bare name is still that parameter
    ['/a?se_tokens=1', '/a?se_tokens=1'],
    ['/a?flag&b=1', '/a?b=1&flag'],
    ['/a?b=%41&a=%2f', '/a?a=%2F&b=A'],
    ['/a?=x&a=1', '/a?=x&a=1'], // empty name sorts first
    ['/a?b=1&&a=1&', '/a?a=1&b=1'],
    ['/a?x=a?b', '/a?x=a?b'], // only the first ? splits
    ['/a?B=1&a=1&_=1', '/a?B=1&_=1&a=1'], // code-unit order, not locale order
    ['/a?a+b=1&a%20b=2', '/a?a%20b=2&a+b=1']
  ]
  for (const [input, expected] of cases) t.equal(key(input), expected, input)
  t.equal(makeCacheKey('/a?se_token=1&b=2', { stripQueryParams: new Set() }), '/a?b=2&se_token=1', 'empty strip set')
})

t.test('keys that must differ stay different', async (t) => {
  const pairs: Array<[string, string]> = [
    ['/A', '/a'],
    ['/a/', '/a'],
    ['/a%2Fb', '/a/b'],
    ['/a?x=1', '/a?x=2'],
    ['/a?x=1', '/a'],
    ['/a?x', '/a?x='],
    ['/a b', '/a%20b']
  ]
  for (const [a, b] of pairs) t.not(key(a), key(b), `${a} vs ${b}`)
})

t.test('invalid targets throw CDN_ERR_REQUEST_INVALID', async (t) => {
  const badTargets = [
    '', 'a', 'http://x/a', '*', '?a=1', ' /a', '/a\u0000b', '/a\rb', '/a\nb', '/a?x=\n', '/a?x=\u0000',
    '/a%00b', '/a%0ab', '/a%0Ab', '/a%0db', '/a%0D%0ASet-Cookie:x', '/seg.ts%00.m3u8', '/%00?x=1'
  ]
  for (const bad of badTargets) {
    let caught: unknown
    try {
      key(bad)
    } catch (err) {
      caught = err
    }
    t.ok(isCdnError(caught, 'CDN_ERR_REQUEST_INVALID'), JSON.stringify(bad))
    t.match(caught, { status: 400, source: 'downstream' })
  }
})
