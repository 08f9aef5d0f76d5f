/**
 * HTTP-date parsing and formatting (RFC 9110 §5.6.7). Pure: the caller passes time in.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-5.6.7
 */

const DAY_NAMES = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const DAY_NAMES_LONG = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
const MS_PER_DAY = 86_400_000
/** Largest instant formatHttpDate accepts: 9999-12-31T23:59:59.999Z (HTTP-date has a 4-digit year). */
const MAX_FORMAT_MS = 253_402_300_799_999
/** Smallest instant formatHttpDate accepts: 0000-01-01T00:00:00Z. */
const MIN_FORMAT_MS = -62_167_219_200_000

/**
 * Parses an HTTP-date in any of the three forms recipients must accept (RFC 9110
 * §5.6.7): IMF-fixdate, obsolete RFC 850 and asctime. Returns epoch ms, or undefined
 * for anything else (including "+0000" zones and single-digit days, which the ABNF
 * does not allow). The day name must be a valid name but is not checked against the
 * date, as most implementations do.
 *
 * RFC 850 years have two digits: with `nowMs` the RFC rule applies (a year more than
 * 50 years in the future means the past century); without it, 70-99 map to 19xx and
 * 00-69 to 20xx.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-5.6.7
 */
export function parseHttpDate (value: string | undefined, nowMs?: number): number | undefined {
  if (value === undefined) return undefined
  const s = value.trim()
  if (s.length === 29) return parseImfFixdate(s)
  if (s.length === 24) return parseAsctime(s)
  return parseRfc850(s, nowMs)
}

/**
 * Formats epoch ms as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), truncating to
 * the second. Throws RangeError outside years 0000-9999.
 * @see https://www.rfc-editor.org/rfc/rfc9110#section-5.6.7
 */
export function formatHttpDate (ms: number): string {
  if (!(ms >= MIN_FORMAT_MS && ms <= MAX_FORMAT_MS)) {
    throw new RangeError(`Expected ms to be a time within years 0000-9999, got ${ms}`)
  }
  // ECMAScript specifies toUTCString as exactly the IMF-fixdate layout for 4-digit years.
  return new Date(ms).toUTCString()
}

let memoSecond = Number.NaN
let memoValue = ''

/**
 * formatHttpDate for the Date header of every response, memoised per second: within
 * one second all callers share the same string.
 */
export function httpDateNow (nowMs: number): string {
  const second = Math.floor(nowMs / 1000)
  if (second !== memoSecond) {
    memoValue = formatHttpDate(second * 1000)
    memoSecond = second
  }
  return memoValue
}

// "Sun, 06 Nov 1994 08:49:37 GMT"
function parseImfFixdate (s: string): number | undefined {
  if (!DAY_NAMES.includes(s.slice(0, 3)) || s[3] !== ',' || s[4] !== ' ' || s[7] !== ' ' ||
      s[11] !== ' ' || s[16] !== ' ' || !s.endsWith(' GMT')) return undefined
  return build(digits(s, 12, 4), month(s, 8), digits(s, 5, 2), s, 17)
}

// "Sun Nov  6 08:49:37 1994"
function parseAsctime (s: string): number | undefined {
  if (!DAY_NAMES.includes(s.slice(0, 3)) || s[3] !== ' ' || s[7] !== ' ' || s[10] !== ' ' ||
      s[19] !== ' ') return undefined
  const day = s[8] === ' ' ? digits(s, 9, 1) : digits(s, 8, 2)
  return build(digits(s, 20, 4), month(s, 4), day, s, 11)
}

// "Sunday, 06-Nov-94 08:49:37 GMT"
function parseRfc850 (s: string, nowMs: number | undefined): number | undefined {
  const comma = s.indexOf(',')
  if (comma < 6 || !DAY_NAMES_LONG.includes(s.slice(0, comma))) return undefined
  const p = comma + 2
  if (s.length !== p + 22 || s[comma + 1] !== ' ' || s[p + 2] !== '-' || s[p + 6] !== '-' ||
      s[p + 9] !== ' ' || !s.endsWith(' GMT')) return undefined
  const yy = digits(s, p + 7, 2)
  if (yy < 0) return undefined
  return build(fullYear(yy, nowMs), month(s, p + 3), digits(s, p, 2), s, p + 10)
}

function fullYear (yy: number, nowMs: number | undefined): number {
  if (nowMs === undefined) return yy >= 70 ? 1900 + yy : 2000 + yy
  const nowYear = new Date(nowMs).getUTCFullYear()
  let year = nowYear - (nowYear % 100) + yy
  if (year > nowYear + 50) year -= 100
  return year
}

// Validates the time-of-day at `t` ("HH:MM:SS") and every field's range, then returns epoch ms.
function build (year: number, mon: number, day: number, s: string, t: number): number | undefined {
  if (s[t + 2] !== ':' || s[t + 5] !== ':') return undefined
  const hour = digits(s, t, 2)
  const minute = digits(s, t + 3, 2)
  const second = digits(s, t + 6, 2)
  if (year < 0 || mon < 0 || day < 1 || day > daysInMonth(year, mon) ||
      hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60) return undefined
  // second = 60 is the ABNF's leap second; it lands on the next minute.
  return daysFromCivil(year, mon + 1, day) * MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000
}

function month (s: string, at: number): number {
  return MONTHS.indexOf(s.slice(at, at + 3))
}

// Fixed-width ASCII digits, or -1 when any character is not a digit.
function digits (s: string, at: number, n: number): number {
  let out = 0
  for (let i = at; i < at + n; i++) {
    const c = s.charCodeAt(i) - 0x30
    if (!(c >= 0 && c <= 9)) return -1
    out = out * 10 + c
  }
  return out
}

function daysInMonth (year: number, mon: number): number {
  if (mon !== 1) return DAYS_IN_MONTH[mon] ?? 0
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0
  return leap ? 29 : 28
}

// Howard Hinnant's days_from_civil: proleptic Gregorian date → days since 1970-01-01,
// with no Date object (and no Date.UTC quirk mapping years 0-99 to 19xx).
function daysFromCivil (year: number, mon: number, day: number): number {
  const y = mon <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (mon > 2 ? mon - 3 : mon + 9) + 2) / 5) + day - 1
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy
  return era * 146_097 + doe - 719_468
}
