import t from 'tap'
import { formatHttpDate, httpDateNow, parseHttpDate } from '../../../lib/http/dates.ts'

const EXAMPLE_MS = Date.UTC(1994, 10, 6, 8, 49, 37)

t.test('RFC 9110 §5.6.7: the three example forms are the same instant', async (t) => {
  t.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), EXAMPLE_MS, 'IMF-fixdate')
  t.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT'), EXAMPLE_MS, 'obsolete RFC 850')
  t.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), EXAMPLE_MS, 'asctime')
})

t.test('RFC 9110 §5.6.7 parseHttpDate: more valid values', async (t) => {
  const cases: Array<[string, number]> = [
    ['Thu, 01 Jan 1970 00:00:00 GMT', 0],
    ['Wed, 31 Dec 1969 23:59:59 GMT', -1000],
    ['Fri, 31 Dec 9999 23:59:59 GMT', Date.UTC(9999, 11, 31, 23, 59, 59)],
    ['Tue, 29 Feb 2000 12:00:00 GMT', Date.UTC(2000, 1, 29, 12)], // 2000 is a leap year
    ['Thu, 29 Feb 2024 00:00:00 GMT', Date.UTC(2024, 1, 29)],
    ['Tue, 19 Jan 2038 03:14:08 GMT', 2 ** 31 * 1000], // past 32-bit time_t
    ['Mon, 01 Jan 0001 00:00:00 GMT', Date.UTC(2001, 0, 1) - 2000 * 365.2425 * 86_400_000],
    ['Sat, 31 Dec 2016 23:59:60 GMT', Date.UTC(2017, 0, 1)], // the ABNF allows second 60
    ['Sun Nov 16 08:49:37 1994', Date.UTC(1994, 10, 16, 8, 49, 37)],
    ['Sun Nov 06 08:49:37 1994', EXAMPLE_MS], // asctime 2DIGIT day
    ['Thursday, 01-Jan-70 00:00:00 GMT', 0],
    ['Saturday, 01-Jan-00 00:00:00 GMT', Date.UTC(2000, 0, 1)],
    ['  Sun, 06 Nov 1994 08:49:37 GMT ', EXAMPLE_MS],
    ['Mon, 06 Nov 1994 08:49:37 GMT', EXAMPLE_MS] // day name not checked against the date
  ]
  for (const [value, ms] of cases) t.equal(parseHttpDate(value), ms, value)
})

t.test('RFC 9110 §5.6.7 parseHttpDate: invalid → undefined', async (t) => {
  const cases: Array<string | undefined> = [
    undefined,
    '',
    '0',
    '1994-11-06T08:49:37Z',
    'Sun, 06 Nov 1994 08:49:37 UTC',
    'Sun, 06 Nov 1994 08:49:37 +0000',
    'Sun, 06 Nov 1994 08:49:37 gmt', // HTTP-date is case-sensitive
    'sun, 06 Nov 1994 08:49:37 GMT',
    'Sun, 06 nov 1994 08:49:37 GMT',
    'Sun, 6 Nov 1994 08:49:37 GMT', // IMF-fixdate needs 2DIGIT day
    'Sun, 06 Nov 94 08:49:37 GMT',
    'Sun,06 Nov 1994 08:49:37 GMT ',
    'Sun, 06 Nov 1994 8:49:37 GMT',
    'Sun, 06 Nov 1994 08:49 GMT',
    'Xyz, 06 Nov 1994 08:49:37 GMT',
    'Sun, 06 Nvm 1994 08:49:37 GMT',
    'Sun, 00 Nov 1994 08:49:37 GMT',
    'Sun, 31 Nov 1994 08:49:37 GMT',
    'Thu, 29 Feb 1900 00:00:00 GMT', // 1900 is not a leap year
    'Sat, 29 Feb 2023 00:00:00 GMT',
    'Sun, 32 Jan 1994 08:49:37 GMT',
    'Sun, 06 Nov 1994 24:00:00 GMT',
    'Sun, 06 Nov 1994 08:60:00 GMT',
    'Sun, 06 Nov 1994 08:49:61 GMT',
    'Sun, 06 Nov 1994 08-49-37 GMT',
    'Sun, 06 Nov 199x 08:49:37 GMT',
    'Sun, -6 Nov 1994 08:49:37 GMT',
    'Sun, 06 Nov 1994 08:49:37 GMTX',
    'Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT', // two values joined
    'Sun, 06 Nov 1994 08:49:37 GM',
    'Sunday, 06-Nov-1994 08:49:37 GMT',
    'Sunday, 06 Nov 94 08:49:37 GMT',
    'Sun, 06-Nov-94 08:49:37 GMT',
    'Sundae, 06-Nov-94 08:49:37 GMT',
    'Sunday,06-Nov-94 08:49:37 GMTx',
    'Sunday, 6-Nov-94 08:49:37 GMT',
    'Sunday, 06-Nov-9x 08:49:37 GMT',
    'Sun Nov 6 08:49:37 1994',
    'Sun Nov  6 08:49:37 94  ',
    'Sun Nov  x 08:49:37 1994',
    'Sun Nov  6 08:49:37  994',
    'Sun  Nov 6 08:49:37 1994',
    '-1',
    'null',
    'Sun, 06 Nov 1994 08:49:37 GMT\u0000'
  ]
  for (const value of cases) t.equal(parseHttpDate(value), undefined, JSON.stringify(value))
})

t.test('RFC 9110 §5.6.7: two-digit RFC 850 years', async (t) => {
  const now = Date.UTC(2025, 5, 1)
  const year = (v: string, nowMs?: number): number | undefined => {
    const ms = parseHttpDate(v, nowMs)
    return ms === undefined ? undefined : new Date(ms).getUTCFullYear()
  }
  t.equal(year('Saturday, 01-Jan-94 00:00:00 GMT', now), 1994, '2094 is > 50 years ahead → 1994')
  t.equal(year('Monday, 01-Jan-70 00:00:00 GMT', now), 2070, '2070 is < 50 years ahead → 2070')
  t.equal(year('Friday, 01-Jan-75 00:00:00 GMT', now), 2075, 'exactly 50 years ahead stays')
  t.equal(year('Saturday, 01-Jan-76 00:00:00 GMT', now), 1976, '51 years ahead → past century')
  t.equal(year('Wednesday, 01-Jan-25 00:00:00 GMT', now), 2025)
  t.equal(year('Monday, 01-Jan-70 00:00:00 GMT'), 1970, 'without a clock 70-99 are 19xx')
  t.equal(year('Wednesday, 31-Dec-69 00:00:00 GMT'), 2069, 'without a clock 00-69 are 20xx')
})

t.test('formatHttpDate writes IMF-fixdate and round-trips', async (t) => {
  t.equal(formatHttpDate(EXAMPLE_MS), 'Sun, 06 Nov 1994 08:49:37 GMT')
  t.equal(formatHttpDate(EXAMPLE_MS + 999), 'Sun, 06 Nov 1994 08:49:37 GMT', 'truncates to the second')
  t.equal(formatHttpDate(0), 'Thu, 01 Jan 1970 00:00:00 GMT')
  t.equal(formatHttpDate(Date.UTC(9999, 11, 31, 23, 59, 59)), 'Fri, 31 Dec 9999 23:59:59 GMT')
  for (let ms = -5e10; ms < 5e12; ms += 123_456_789_000) {
    const s = formatHttpDate(ms)
    t.equal(parseHttpDate(s), Math.floor(ms / 1000) * 1000, s)
  }
  for (const bad of [Number.NaN, Infinity, -Infinity, 253_402_300_800_000, -62_167_219_200_001]) {
    t.throws(() => formatHttpDate(bad), RangeError, String(bad))
  }
})

t.test('httpDateNow memoises per second', async (t) => {
  const a = httpDateNow(EXAMPLE_MS + 1)
  t.equal(a, 'Sun, 06 Nov 1994 08:49:37 GMT')
  t.equal(httpDateNow(EXAMPLE_MS + 999), a)
  t.equal(httpDateNow(EXAMPLE_MS + 1000), 'Sun, 06 Nov 1994 08:49:38 GMT', 'next second')
  t.equal(httpDateNow(EXAMPLE_MS), a, 'going back recomputes')
  t.equal(httpDateNow(-1), 'Wed, 31 Dec 1969 23:59:59 GMT', 'negative times floor to the earlier second')
})
