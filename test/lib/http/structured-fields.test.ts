import t from 'tap'
import { isSfToken, parseSfDictionary, parseSfList, toSfString } from '../../../lib/http/structured-fields.ts'
import type { SfMember } from '../../../lib/http/structured-fields.ts'

// A compact view of parsed members so tables stay readable.
function view (m: SfMember): unknown {
  const params = (p: ReadonlyMap<string, { type: string, value: unknown }>): unknown =>
    Object.fromEntries([...p].map(([k, v]) => [k, `${v.type}:${String(v.value)}`]))
  if (m.kind === 'item') return [`${m.value.type}:${String(m.value.value)}`, params(m.params)]
  return [m.items.map(view), params(m.params)]
}

t.test('RFC 8941 §4.2.1 parseSfList: valid lists', async (t) => {
  const cases: Array<[string | string[], unknown[]]> = [
    ['', []],
    ['a', [['token:a', {}]]],
    ['a, b,c', [['token:a', {}], ['token:b', {}], ['token:c', {}]]],
    ['"x y", 42, -7, 4.5, ?1, ?0, :aGk=:, *tok/en:x', [
      ['string:x y', {}], ['integer:42', {}], ['integer:-7', {}], ['decimal:4.5', {}],
      ['boolean:true', {}], ['boolean:false', {}], ['binary:aGk=', {}], ['token:*tok/en:x', {}]]],
    ['cache; hit; ttl=30; fwd=uri-miss; key="/a"', [['token:cache', {
      hit: 'boolean:true', ttl: 'integer:30', fwd: 'token:uri-miss', key: 'string:/a' }]]],
    ['a;x=1;x=2', [['token:a', { x: 'integer:2' }]]], // later parameter overwrites
    ['"esc \\" \\\\"', [['string:esc " \\', {}]]],
    ['(a b);p, (), ( 1 2 )', [[[['token:a', {}], ['token:b', {}]], { p: 'boolean:true' }], [[], {}], [[['integer:1', {}], ['integer:2', {}]], {}]]],
    [['a', 'b'], [['token:a', {}], ['token:b', {}]]], // field lines are joined
    ['  a ,\tb  ', [['token:a', {}], ['token:b', {}]]],
    ['999999999999999', [['integer:999999999999999', {}]]],
    ['123456789012.123', [['decimal:123456789012.123', {}]]]
  ]
  for (const [value, expected] of cases) t.same(parseSfList(value)?.map(view), expected, JSON.stringify(value))
})

t.test('RFC 8941 §4.2 parseSfList: parse failures → undefined', async (t) => {
  const cases = [
    'a,', 'a,,b', ',a', 'a b', '\ta', 'a;', 'a;X=1', 'a;=1', 'A=1;', '"unterminated', '"bad \\x escape"',
    '"ctl \u0001"', '"non-ascii é"', '1234567890123456', '1.1234', '1234567890123.1', '1.', '-', '-a', '?2', '?',
    ':not base64!:', ':unterminated', '(a', '(a,b)', '(a)b', '@date', '%"display"', 'é', 'a;b=', 'a; b=(1)'
  ]
  for (const value of cases) t.equal(parseSfList(value), undefined, JSON.stringify(value))
})

t.test('RFC 8941 §4.2.2 parseSfDictionary', async (t) => {
  const ok: Array<[string, Record<string, unknown>]> = [
    ['', {}],
    ['a=1, b, c=?0', { a: ['integer:1', {}], b: ['boolean:true', {}], c: ['boolean:false', {}] }],
    ['a;p=1', { a: ['boolean:true', { p: 'integer:1' }] }],
    ['a=1, a=2', { a: ['integer:2', {}] }], // later duplicate overwrites
    ['k-1.x_*=(1 "two")', { 'k-1.x_*': [[['integer:1', {}], ['string:two', {}]], {}] }],
    ['*k="v"', { '*k': ['string:v', {}] }]
  ]
  for (const [value, expected] of ok) {
    const dict = parseSfDictionary(value)
    t.same(dict === undefined ? undefined : Object.fromEntries([...dict].map(([k, m]) => [k, view(m)])), expected, value)
  }
  for (const bad of ['A=1', '1a=1', 'a=1,', 'a==1', 'a=', 'a = 1', 'a=1 b=2', '-a=1', 'a=1;B']) {
    t.equal(parseSfDictionary(bad), undefined, JSON.stringify(bad))
  }
})

t.test('RFC 8941 §3.3.4 / §4.1.6 serialisation helpers', async (t) => {
  for (const token of ['a', 'streamedge-edge1', 'Cache', '*x', 'a:b/c', "a!#$%&'*+-.^_`|~"]) t.ok(isSfToken(token), token)
  for (const notToken of ['', '1a', '-a', 'a b', 'a,b', 'a"b', 'a;b', 'é', 'a=b', 'a(b)']) t.notOk(isSfToken(notToken), notToken)
  t.equal(toSfString('plain'), '"plain"')
  t.equal(toSfString('a"b\\c'), '"a\\"b\\\\c"')
  t.equal(toSfString('tab\there é\u0000'), '"tab?here ??"')
  t.equal(toSfString(''), '""')
  const round = ['x y', 'q"uote', 'back\\slash', '']
  for (const s of round) t.same(parseSfList(toSfString(s))?.map(view), [[`string:${s}`, {}]], `round trip ${s}`)
})
