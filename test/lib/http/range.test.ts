import t from 'tap'
import {
  COALESCE_GAP_BYTES,
  formatContentRange,
  formatUnsatisfiedRange,
  ifRangeMatches,
  MAX_RANGE_HEADER_BYTES,
  parseRangeHeader,
  resolveRanges
} from '../../../lib/http/range.ts'
import type { RangeSpec } from '../../../lib/http/range.ts'

const MAX = Number.MAX_SAFE_INTEGER

t.test('RFC 9110 §14.1.1 parseRangeHeader: valid forms', async (t) => {
  const cases: Array<[string, RangeSpec[]]> = [
    ['bytes=0-99', [{ first: 0, last: 99 }]],
    ['bytes=0-0', [{ first: 0, last: 0 }]],
    ['bytes=500-', [{ first: 500 }]],
    ['bytes=-500', [{ suffix: 500 }]],
    ['bytes=-0', [{ suffix: 0 }]],
    ['bytes=007-010', [{ first: 7, last: 10 }]],
    ['bytes=0-99,200-299', [{ first: 0, last: 99 }, { first: 200, last: 299 }]],
    ['bytes=0-99, 200-, -5', [{ first: 0, last: 99 }, { first: 200 }, { suffix: 5 }]],
    ['bytes=0-1 ,\t2-3', [{ first: 0, last: 1 }, { first: 2, last: 3 }]],
    ['Bytes=1-2', [{ first: 1, last: 2 }]], // §14.1: range units are case-insensitive
    ['BYTES=1-2', [{ first: 1, last: 2 }]],
    ['  bytes=1-2  ', [{ first: 1, last: 2 }]],
    ['bytes=,0-1', [{ first: 0, last: 1 }]], // §5.6.1: empty list elements are ignored
    ['bytes=0-1,,,2-3,', [{ first: 0, last: 1 }, { first: 2, last: 3 }]],
    [`bytes=0-${MAX}`, [{ first: 0, last: MAX }]],
    [`bytes=-${MAX}`, [{ suffix: MAX }]],
    ['bytes=5-5', [{ first: 5, last: 5 }]]
  ]
  for (const [value, expected] of cases) t.same(parseRangeHeader(value), expected, JSON.stringify(value))
})

t.test('RFC 9110 §14.1.1 parseRangeHeader: absent or invalid → null', async (t) => {
  const cases: Array<string | undefined> = [
    undefined,
    '',
    'bytes',
    'bytes=',
    'bytes=,',
    'bytes= ,',
    'bytes =0-1', // no whitespace around "=" in ranges-specifier
    'bytes= 0-1x',
    'items=0-1', // only the bytes unit
    'byte=0-1',
    'bytes0-1',
    'bytes=-',
    'bytes=--1',
    'bytes=-1-2',
    'bytes=a-b',
    'bytes=1-a',
    'bytes=0x10-20',
    'bytes=1.5-2',
    'bytes=+1-2',
    'bytes=-+1',
    'bytes=5-4', // first > last
    'bytes=0-1 2-3', // missing comma
    'bytes=0 -1',
    'bytes=0- 1',
    'bytes=1',
    'bytes=0-1;x',
    'bytes=0-1,junk',
    `bytes=0-${MAX + 1}`, // beyond MAX_SAFE_INTEGER
    `bytes=${'9'.repeat(400)}-`,
    `bytes=-${'1'.repeat(17)}`,
    'bytes=\u00a01-2',
    'bytes=１-2' // full-width digit
  ]
  for (const value of cases) t.equal(parseRangeHeader(value), null, JSON.stringify(value))
})

t.test('parseRangeHeader rejects values over 1 KiB', async (t) => {
  let value = 'bytes=0-0'
  while (value.length <= MAX_RANGE_HEADER_BYTES - 4) value += ',0-0'
  t.ok(value.length <= MAX_RANGE_HEADER_BYTES)
  t.not(parseRangeHeader(value), null, 'at the limit it parses')
  t.equal(parseRangeHeader(value + ',1-1'), null, 'one spec past the limit does not')
})

t.test('RFC 9110 §14.1.2 resolveRanges: single ranges', async (t) => {
  const cases: Array<[RangeSpec[], number, unknown]> = [
    [[{ first: 0, last: 99 }], 1000, [{ start: 0, end: 99 }]],
    [[{ first: 0, last: 5000 }], 1000, [{ start: 0, end: 999 }]], // last clamped to size-1
    [[{ first: 500 }], 1000, [{ start: 500, end: 999 }]],
    [[{ first: 999 }], 1000, [{ start: 999, end: 999 }]],
    [[{ suffix: 100 }], 1000, [{ start: 900, end: 999 }]],
    [[{ suffix: 1000 }], 1000, [{ start: 0, end: 999 }]],
    [[{ suffix: 5000 }], 1000, [{ start: 0, end: 999 }]], // suffix larger than size → whole
    [[{ first: 0, last: 0 }], 1, [{ start: 0, end: 0 }]],
    [[{ first: 0 }], MAX, [{ start: 0, end: MAX - 1 }]]
  ]
  for (const [specs, size, ranges] of cases) {
    t.same(resolveRanges(specs, size), { kind: 'ranges', ranges }, `${JSON.stringify(specs)} of ${size}`)
  }
})

t.test('RFC 9110 §14.1.2 / §15.5.17 resolveRanges: unsatisfiable → 416', async (t) => {
  const cases: Array<[RangeSpec[], number]> = [
    [[{ first: 1000 }], 1000],
    [[{ first: 1000, last: 2000 }], 1000],
    [[{ first: 5000, last: 6000 }], 1000],
    [[{ suffix: 0 }], 1000], // a zero-length suffix is never satisfiable
    [[{ first: 0 }], 0],
    [[{ first: 0, last: 0 }], 0],
    [[{ suffix: 0 }], 0],
    [[{ first: 2000 }, { first: 3000 }, { suffix: 0 }], 1000]
  ]
  for (const [specs, size] of cases) {
    t.same(resolveRanges(specs, size), { kind: 'unsatisfiable' }, `${JSON.stringify(specs)} of ${size}`)
  }
})

t.test('RFC 9110 §14.1.2: unsatisfiable specs are dropped, the rest served', async (t) => {
  t.same(resolveRanges([{ first: 5000 }, { first: 0, last: 9 }], 1000), { kind: 'ranges', ranges: [{ start: 0, end: 9 }] })
  t.same(resolveRanges([{ suffix: 0 }, { suffix: 10 }], 1000), { kind: 'ranges', ranges: [{ start: 990, end: 999 }] })
})

t.test('RFC 9110 §14.1.1: a suffix on an empty representation is satisfiable but empty → 200', async (t) => {
  t.same(resolveRanges([{ suffix: 10 }], 0), { kind: 'ignore' })
})

t.test('RFC 9110 §14.2 resolveRanges: several ranges', async (t) => {
  const gap = COALESCE_GAP_BYTES
  const cases: Array<[string, RangeSpec[], number, unknown]> = [
    ['disjoint ascending ranges stay as asked',
      [{ first: 0, last: 99 }, { first: 500, last: 599 }], 1000,
      { kind: 'ranges', ranges: [{ start: 0, end: 99 }, { start: 500, end: 599 }] }],
    ['two disjoint ranges out of order keep the order asked (§15.3.7.2 SHOULD)',
      [{ first: 500, last: 599 }, { first: 0, last: 99 }], 1000,
      { kind: 'ranges', ranges: [{ start: 500, end: 599 }, { start: 0, end: 99 }] }],
    ['two overlapping ranges are coalesced',
      [{ first: 0, last: 500 }, { first: 400, last: 999 }], 10_000,
      { kind: 'ranges', ranges: [{ start: 0, end: 999 }] }],
    ['a contained range is coalesced into its container',
      [{ first: 0, last: 999 }, { first: 10, last: 20 }], 10_000,
      { kind: 'ranges', ranges: [{ start: 0, end: 999 }] }],
    ['adjacent ranges are coalesced',
      [{ first: 0, last: 99 }, { first: 100, last: 199 }], 1000,
      { kind: 'ranges', ranges: [{ start: 0, end: 199 }] }],
    [`ranges ${gap} bytes apart are coalesced`,
      [{ first: 0, last: 99 }, { first: 100 + gap, last: 999 }], 10_000,
      { kind: 'ranges', ranges: [{ start: 0, end: 999 }] }],
    [`ranges ${gap + 1} bytes apart are not`,
      [{ first: 0, last: 99 }, { first: 101 + gap, last: 999 }], 10_000,
      { kind: 'ranges', ranges: [{ start: 0, end: 99 }, { start: 101 + gap, end: 999 }] }],
    ['two overlapping ranges out of order are coalesced and sorted',
      [{ first: 400, last: 999 }, { first: 0, last: 500 }], 10_000,
      { kind: 'ranges', ranges: [{ start: 0, end: 999 }] }],
    ['duplicate ranges coalesce',
      [{ first: 0, last: 9 }, { first: 0, last: 9 }], 100,
      { kind: 'ranges', ranges: [{ start: 0, end: 9 }] }],
    ['a suffix and an int-range that overlap coalesce',
      [{ first: 0, last: 9 }, { suffix: 1000 }], 100,
      { kind: 'ranges', ranges: [{ start: 0, end: 99 }] }],
    ['coalescing can leave several parts',
      [{ first: 0, last: 9 }, { first: 5, last: 19 }, { first: 5000, last: 5009 }], 10_000,
      { kind: 'ranges', ranges: [{ start: 0, end: 19 }, { start: 5000, end: 5009 }] }],
    ['§14.2: more than two overlapping ranges → ignore',
      [{ first: 0, last: 99 }, { first: 50, last: 149 }, { first: 60, last: 69 }], 1000,
      { kind: 'ignore' }],
    ['§14.2: two separate overlapping pairs → ignore',
      [{ first: 0, last: 99 }, { first: 50, last: 149 }, { first: 500, last: 599 }, { first: 550, last: 649 }], 1000,
      { kind: 'ignore' }],
    ['§14.2: the same range many times → ignore',
      Array.from({ length: 10 }, () => ({ first: 0 })), 1000,
      { kind: 'ignore' }],
    ['§14.2: many small ranges not in ascending order → ignore',
      [{ first: 900, last: 901 }, { first: 500, last: 501 }, { first: 100, last: 101 }], 1000,
      { kind: 'ignore' }],
    ['many small ascending disjoint ranges are served',
      Array.from({ length: 16 }, (_, i) => ({ first: i * 1000, last: i * 1000 + 1 })), 20_000,
      { kind: 'ranges', ranges: Array.from({ length: 16 }, (_, i) => ({ start: i * 1000, end: i * 1000 + 1 })) }],
    ['more than maxRanges (16) → ignore',
      Array.from({ length: 17 }, (_, i) => ({ first: i * 1000, last: i * 1000 + 1 })), 20_000,
      { kind: 'ignore' }]
  ]
  for (const [name, specs, size, expected] of cases) t.same(resolveRanges(specs, size), expected, name)
})

t.test('resolveRanges: maxRanges option', async (t) => {
  const specs: RangeSpec[] = [{ first: 0, last: 0 }, { first: 500, last: 500 }]
  t.same(resolveRanges(specs, 1000, { maxRanges: 1 }), { kind: 'ignore' })
  t.equal(resolveRanges(specs, 1000, { maxRanges: 2 }).kind, 'ranges')
  t.equal(resolveRanges([{ first: 0 }], 1000, { maxRanges: 1 }).kind, 'ranges')
  for (const bad of [0, -1, 1.5, Number.NaN]) {
    t.throws(() => resolveRanges(specs, 1000, { maxRanges: bad }),
      { name: 'TypeError', message: `Expected options.maxRanges to be a positive integer, got ${bad}` })
  }
  for (const bad of [-1, 1.5, Number.NaN, Infinity]) {
    t.throws(() => resolveRanges(specs, bad), { name: 'TypeError' }, `size ${bad}`)
  }
})

t.test('parse + resolve end to end', async (t) => {
  const resolve = (v: string, size: number): unknown => {
    const specs = parseRangeHeader(v)
    return specs === null ? null : resolveRanges(specs, size)
  }
  t.same(resolve('bytes=0-1023', 500), { kind: 'ranges', ranges: [{ start: 0, end: 499 }] })
  t.same(resolve('bytes=-100', 50), { kind: 'ranges', ranges: [{ start: 0, end: 49 }] })
  t.same(resolve('bytes=100-', 50), { kind: 'unsatisfiable' })
  t.equal(resolve('bytes=abc', 50), null)
})

t.test('RFC 9110 §14.4 Content-Range formatting', async (t) => {
  t.equal(formatContentRange(0, 99, 1000), 'bytes 0-99/1000')
  t.equal(formatContentRange(999, 999, 1000), 'bytes 999-999/1000')
  t.equal(formatUnsatisfiedRange(1000), 'bytes */1000')
  t.equal(formatUnsatisfiedRange(0), 'bytes */0')
})

t.test('RFC 9110 §13.1.5 ifRangeMatches', async (t) => {
  const lm = 'Sun, 06 Nov 1994 08:49:37 GMT'
  const cases: Array<[string, string | undefined, string | undefined, string | undefined, boolean]> = [
    ['absent If-Range → true', undefined, '"a"', lm, true],
    ['same strong tag', '"abc"', '"abc"', undefined, true],
    ['tags with commas and spaces compare exactly', '"a, b"', '"a, b"', undefined, true],
    ['different tag', '"abc"', '"abd"', lm, false],
    ['tag against missing ETag', '"abc"', undefined, lm, false],
    ['weak If-Range never matches', 'W/"abc"', '"abc"', lm, false],
    ['weak stored ETag never matches', '"abc"', 'W/"abc"', lm, false],
    ['weak against weak never matches', 'W/"abc"', 'W/"abc"', lm, false],
    ['tag is case-sensitive', '"ABC"', '"abc"', undefined, false],
    ['unquoted tag is not an entity-tag nor a date', 'abc', 'abc', lm, false],
    ['date equal to Last-Modified', lm, '"x"', lm, true],
    ['date in RFC 850 form equal to Last-Modified', 'Sunday, 06-Nov-94 08:49:37 GMT', undefined, lm, true],
    ['date in asctime form equal to Last-Modified', 'Sun Nov  6 08:49:37 1994', undefined, lm, true],
    ['date one second later', 'Sun, 06 Nov 1994 08:49:38 GMT', undefined, lm, false],
    ['date one second earlier', 'Sun, 06 Nov 1994 08:49:36 GMT', undefined, lm, false],
    ['date with no Last-Modified', lm, '"x"', undefined, false],
    ['date against an invalid Last-Modified', lm, undefined, 'yesterday', false],
    ['invalid date', 'yesterday', undefined, 'yesterday', false],
    ['empty If-Range', '', '""', lm, false]
  ]
  for (const [name, ifRange, etag, lastModified, expected] of cases) {
    t.equal(ifRangeMatches(ifRange, etag, lastModified), expected, name)
  }
})
