import type { IncomingHttpHeaders } from 'node:http'
import t from 'tap'
import { etagMatches, forwardRequestHeaders, HOP_BY_HOP, ifMatchMatches, ifNoneMatchMatches, toStoredHeaders } from '../../../lib/http/headers.ts'
import type { StoredHeaders } from '../../../edge/cache/types.ts'

t.test('RFC 9110 §7.6.1 HOP_BY_HOP lists the connection-specific fields', async (t) => {
  t.same([...HOP_BY_HOP].sort(), [
    'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer',
    'transfer-encoding', 'upgrade'
  ])
})

t.test('toStoredHeaders', async (t) => {
  const raw: IncomingHttpHeaders = {
    'content-type': 'video/mp2t',
    'content-length': '1880',
    'transfer-encoding': 'chunked',
    connection: 'keep-alive, X-Hop, , close',
    'keep-alive': 'timeout=5',
    'x-hop': 'secret',
    'x-kept': 'yes',
    'set-cookie': ['a=1', 'b=2'],
    vary: 'accept-encoding',
    te: 'trailers',
    trailer: 'x-checksum',
    upgrade: 'h2c',
    'proxy-authenticate': 'Basic',
    etag: '"abc"',
    'cache-control': undefined
  }
  const stored: StoredHeaders = toStoredHeaders(raw) // assignable to the cache's type
  t.same(stored, {
    'content-type': 'video/mp2t',
    'x-kept': 'yes',
    'set-cookie': ['a=1', 'b=2'],
    vary: 'accept-encoding',
    etag: '"abc"'
  })
  t.not(stored['set-cookie'], raw['set-cookie'], 'the Set-Cookie list is copied, not shared')
})

t.test('toStoredHeaders: mixed-case names merge, repeats join with ", ", Set-Cookie stays a list', async (t) => {
  t.same(toStoredHeaders({
    'Cache-Control': 'max-age=60',
    'cache-control': 'public',
    Via: ['1.1 a', '1.1 b'],
    'Set-Cookie': 'x=1',
    'set-cookie': ['y=2'],
    'Content-Length': '5',
    CONNECTION: 'X-Secret',
    'x-secret': 'gone',
    'X-SECRET': 'gone too',
    'x-empty': ''
  }), {
    'cache-control': 'max-age=60, public',
    via: '1.1 a, 1.1 b',
    'set-cookie': ['x=1', 'y=2'],
    'x-empty': ''
  })
  t.same(toStoredHeaders({}), {})
  t.same(toStoredHeaders({ connection: ['x-a', 'x-b'], 'x-a': '1', 'x-b': '2', 'x-c': '3' }), { 'x-c': '3' },
    'Connection given as several lines')
})

t.test('RFC 9110 §7.6.1 forwardRequestHeaders', async (t) => {
  const req: IncomingHttpHeaders = {
    host: 'edge.example',
    'user-agent': 'player/1',
    accept: '*/*',
    range: 'bytes=0-99',
    'if-range': '"abc"',
    'if-none-match': '"abc"',
    'if-modified-since': 'Sun, 06 Nov 1994 08:49:37 GMT',
    'if-match': '"abc"',
    'if-unmodified-since': 'Sun, 06 Nov 1994 08:49:37 GMT',
    connection: 'keep-alive, x-client-hop',
    'x-client-hop': '1',
    'proxy-authorization': 'Basic Zm9v',
    te: 'trailers',
    cookie: 'a=1',
    'x-forwarded-for': '10.0.0.1'
  }
  t.same(forwardRequestHeaders(req), {
    host: 'edge.example',
    'user-agent': 'player/1',
    accept: '*/*',
    range: 'bytes=0-99',
    'if-range': '"abc"',
    'if-none-match': '"abc"',
    'if-modified-since': 'Sun, 06 Nov 1994 08:49:37 GMT',
    'if-match': '"abc"',
    'if-unmodified-since': 'Sun, 06 Nov 1994 08:49:37 GMT',
    cookie: 'a=1',
    'x-forwarded-for': '10.0.0.1'
  }, 'pass-through keeps end-to-end fields, drops hop-by-hop and Connection-listed')
  t.same(forwardRequestHeaders(req, { stripRange: true, stripConditionals: true, drop: new Set(['host']) }), {
    'user-agent': 'player/1',
    accept: '*/*',
    cookie: 'a=1',
    'x-forwarded-for': '10.0.0.1'
  }, 'a fill asks for the whole object, unconditionally')
  t.same(forwardRequestHeaders(req, { stripRange: true }), {
    host: 'edge.example',
    'user-agent': 'player/1',
    accept: '*/*',
    'if-none-match': '"abc"',
    'if-modified-since': 'Sun, 06 Nov 1994 08:49:37 GMT',
    'if-match': '"abc"',
    'if-unmodified-since': 'Sun, 06 Nov 1994 08:49:37 GMT',
    cookie: 'a=1',
    'x-forwarded-for': '10.0.0.1'
  }, 'stripRange alone')
  const list = ['1.1 a', '1.1 b']
  const out = forwardRequestHeaders({ 'X-Multi': list, Range: 'bytes=1-2' }, { stripRange: true })
  t.same(out, { 'x-multi': ['1.1 a', '1.1 b'] }, 'names lower-cased, lists kept')
  t.not(out['x-multi'], list, 'lists are copied')
})

t.test('RFC 9110 §8.8.3.2 etagMatches: strong and weak comparison', async (t) => {
  // The RFC's own table.
  const table: Array<[string, string, boolean, boolean]> = [
    ['W/"1"', 'W/"1"', false, true],
    ['W/"1"', 'W/"2"', false, false],
    ['W/"1"', '"1"', false, true],
    ['"1"', '"1"', true, true]
  ]
  for (const [a, b, strong, weak] of table) {
    t.equal(etagMatches(a, b, false), strong, `strong ${a} ${b}`)
    t.equal(etagMatches(b, a, false), strong, `strong ${b} ${a}`)
    t.equal(etagMatches(a, b, true), weak, `weak ${a} ${b}`)
    t.equal(etagMatches(b, a, true), weak, `weak ${b} ${a}`)
  }
  t.equal(etagMatches('"a"', '"b"', true), false)
  t.equal(etagMatches('"a"', '"A"', true), false, 'opaque tags are case-sensitive')
  t.equal(etagMatches('"ab"', '"a"', true), false)
  t.equal(etagMatches('w/"a"', '"a"', true), false, 'the weak prefix is case-sensitive W/')
  t.equal(etagMatches(undefined, '"a"', true), false)
  t.equal(etagMatches('"a"', undefined, true), false)
  t.equal(etagMatches(undefined, undefined, true), false)
  t.equal(etagMatches('""', '""', false), true, 'empty opaque tags are valid')
})

t.test('RFC 9110 §13.1.2 ifNoneMatchMatches', async (t) => {
  const cases: Array<[string | string[] | undefined, string | undefined, boolean]> = [
    [undefined, '"a"', false],
    ['*', '"a"', true],
    [' * ', undefined, true], // any current representation matches *
    ['"a"', '"a"', true],
    ['"a"', 'W/"a"', true], // weak comparison
    ['W/"a"', '"a"', true],
    ['W/"a"', 'W/"a"', true],
    ['"b"', '"a"', false],
    ['"a"', undefined, false],
    ['"x", "y", "a"', '"a"', true],
    ['"x","a"', '"a"', true],
    ['"x" ,\t W/"a"', '"a"', true],
    ['"a,b"', '"a,b"', true], // commas are allowed inside opaque tags
    ['"a,b"', '"a"', false],
    ['"a,b"', '"b"', false],
    ['"x", "a,b"', '"b"', false],
    ['"aa"', '"a"', false],
    ['"a"', '"aa"', false],
    ['junk, "a"', '"a"', true], // malformed members are skipped
    ['a', 'a', false], // unquoted is not an entity-tag
    ['W/a, "a"', '"a"', true],
    ['"a', '"a"', false], // unterminated
    ['"x"junk, "a"', '"a"', true],
    ['*, "a"', '"b"', false], // "*" is only valid alone
    ['', '"a"', false],
    [['"x"', '"a"'], '"a"', true], // several field lines
    [['"x"', '"y"'], '"a"', false],
    [['*'], '"a"', true]
  ]
  for (const [header, etag, expected] of cases) {
    t.equal(ifNoneMatchMatches(header, etag), expected, `${JSON.stringify(header)} vs ${etag}`)
  }
})

t.test('RFC 9110 §13.1.1 ifMatchMatches: the same list syntax, strong comparison', async (t) => {
  const cases: Array<[string | string[] | undefined, string | undefined, boolean]> = [
    [undefined, '"a"', false],
    ['*', '"a"', true],
    ['*', 'W/"a"', true],
    ['"a"', '"a"', true],
    ['"x", "a,b"', '"a,b"', true],
    ['"a"', 'W/"a"', false], // a weak stored tag never matches strongly
    ['W/"a"', '"a"', false], // nor a weak listed one
    ['W/"a", "a"', '"a"', true],
    ['"a"', undefined, false],
    ['junk, "a"', '"a"', true],
    [['"x"', '"a"'], '"a"', true],
  ]
  for (const [header, etag, expected] of cases) {
    t.equal(ifMatchMatches(header, etag), expected, `${JSON.stringify(header)} vs ${etag}`)
  }
})
