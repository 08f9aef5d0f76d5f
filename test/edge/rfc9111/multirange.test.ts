/**
 * Multiple byte ranges from storage (RFC 9110 §14.2, §14.6, §15.3.7.2): one
 * multipart/byteranges part per range with its own Content-Type and Content-Range, in
 * the order asked, at most `maxRanges` (else 200 with the whole body); overlapping or
 * abusive range sets ignored, rejected or coalesced as §14.2 / §17.15 allow, never
 * amplified.
 */
import t, { type Test } from 'tap'
import type { Fetched } from '../../helpers/http-client.ts'
import { checkResponse, isHit, ok, startRig, type EdgeOverrides, type Rig } from './harness.ts'

const PATH = '/ranges/blob.bin'
const SIZE = 4000
/** Printable, position-dependent bytes: a misplaced slice is visible. */
const BODY = Buffer.from(Array.from({ length: SIZE }, (_, i) => 0x41 + ((i * 7 + Math.floor(i / 26)) % 26)))
const TYPE = 'application/octet-stream'

interface Part {
  readonly headers: Readonly<Record<string, string>>
  readonly data: Buffer
}

/** The boundary of a `multipart/byteranges` Content-Type, or undefined for any other type. */
function boundaryOf (contentType: string | undefined): string | undefined {
  const m = /^multipart\/byteranges\s*;(?:.*;)?\s*boundary=("([^"]+)"|[^;\s]+)/i.exec(contentType ?? '')
  if (m === null) return undefined
  return m[2] ?? m[1]
}

/** Splits a multipart body (RFC 2046 §5.1.1) into parts with lower-case header names. */
function parseMultipart (body: Buffer, boundary: string): Part[] {
  const delimiter = Buffer.from(`--${boundary}`)
  const parts: Part[] = []
  let pos = body.indexOf(delimiter)
  if (pos < 0) throw new Error('no boundary delimiter in the body')
  for (;;) {
    pos += delimiter.length
    if (body.subarray(pos, pos + 2).toString() === '--') return parts
    if (body.subarray(pos, pos + 2).toString() !== '\r\n') throw new Error(`expected CRLF after the delimiter at ${pos}`)
    pos += 2
    const headerEnd = body.indexOf('\r\n\r\n', pos)
    if (headerEnd < 0) throw new Error('part headers never end')
    const headers: Record<string, string> = {}
    for (const line of body.subarray(pos, headerEnd).toString('latin1').split('\r\n')) {
      const colon = line.indexOf(':')
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    const dataStart = headerEnd + 4
    const next = body.indexOf(Buffer.from(`\r\n--${boundary}`), dataStart)
    if (next < 0) throw new Error('part never closed by a delimiter')
    parts.push({ headers, data: body.subarray(dataStart, next) })
    pos = next + 2
  }
}

/** Checks a multipart/byteranges answer: exactly these [start, end] ranges, in this order. */
function expectMultipart (t: Test, res: Fetched, ranges: ReadonlyArray<readonly [number, number]>, label: string): void {
  t.equal(res.status, 206, `${label}: 206`)
  const boundary = boundaryOf(res.headers['content-type'])
  t.ok(boundary, `${label}: Content-Type is multipart/byteranges with a boundary (got ${String(res.headers['content-type'])})`)
  t.equal(res.headers['content-range'], undefined, `${label}: no Content-Range on a multipart response`)
  t.equal(res.headers['content-length'], String(res.body.length), `${label}: Content-Length is the multipart body length`)
  if (boundary === undefined) return
  let parts: Part[] = []
  try {
    parts = parseMultipart(res.body, boundary)
  } catch (err) {
    t.fail(`${label}: malformed multipart body: ${(err as Error).message}`)
    return
  }
  t.same(parts.map((p) => p.headers['content-range']), ranges.map(([s, e]) => `bytes ${s}-${e}/${SIZE}`), `${label}: one part per range, in the order asked`)
  for (const [i, [start, end]] of ranges.entries()) {
    const part = parts[i]
    if (part === undefined) continue
    t.equal(part.headers['content-type'], TYPE, `${label}: part ${i} has the representation's Content-Type`)
    t.ok(part.data.equals(BODY.subarray(start, end + 1)), `${label}: part ${i} carries bytes ${start}-${end}`)
  }
}

/**
 * Checks an answer the RFC leaves open (200, 416, one part or several): whatever the
 * form, every byte sent is the right byte, and no byte is sent twice.
 */
function expectFaithful (t: Test, res: Fetched, label: string): void {
  if (res.status === 200) {
    t.ok(res.body.equals(BODY), `${label}: 200 carries the whole body`)
    return
  }
  if (res.status === 416) {
    t.equal(res.headers['content-range'], `bytes */${SIZE}`, `${label}: 416 names the length`)
    return
  }
  t.equal(res.status, 206, `${label}: 200, 206 or 416 (got ${res.status})`)
  const boundary = boundaryOf(res.headers['content-type'])
  const parts: Array<{ range: string | undefined, data: Buffer }> = boundary === undefined
    ? [{ range: String(res.headers['content-range']), data: res.body }]
    : parseMultipart(res.body, boundary).map((p) => ({ range: p.headers['content-range'], data: p.data }))
  let total = 0
  const covered = new Set<number>()
  for (const p of parts) {
    const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(p.range ?? '')
    if (m === null) {
      t.fail(`${label}: bad Content-Range ${String(p.range)}`)
      continue
    }
    const start = Number(m[1])
    const end = Number(m[2])
    t.ok(p.data.equals(BODY.subarray(start, end + 1)), `${label}: bytes ${start}-${end} are right`)
    for (let i = start; i <= end; i++) covered.add(i)
    total += end - start + 1
  }
  t.equal(total, covered.size, `${label}: no byte is sent twice (RFC 9110 §17.15)`)
}

async function cached (t: Test, edge: EdgeOverrides = {}): Promise<Rig> {
  const rig = await startRig(t, edge)
  rig.origin.script(PATH, { ...ok({ 'cache-control': 'max-age=600', etag: '"blob"', 'content-type': TYPE }), body: BODY })
  const fill = await rig.fetch(PATH)
  t.ok(fill.body.equals(BODY), 'filled')
  return rig
}

const MULTI: Array<[string, string, Array<[number, number]>]> = [
  ['two ranges', 'bytes=0-9, 2000-2009', [[0, 9], [2000, 2009]]],
  ['three ranges with a suffix', 'bytes=0-9,2000-2009,-10', [[0, 9], [2000, 2009], [3990, 3999]]],
  ['an open-ended range', 'bytes=0-9, 3900-', [[0, 9], [3900, 3999]]],
  ['two ranges out of order (parts in the order asked, §15.3.7.2)', 'bytes=2000-2009, 0-9', [[2000, 2009], [0, 9]]],
]

for (const [what, range, parts] of MULTI) {
  t.test(`RFC 9110 §14.6 / §15.3.7.2: ${what} from storage → multipart/byteranges`, async (t) => {
    const rig = await cached(t)
    const res = await rig.fetch(PATH, { headers: { range } })
    expectMultipart(t, res, parts, range)
    t.ok(isHit(res), 'served from storage')
    t.equal(res.headers.etag, '"blob"', 'RFC 9110 §15.3.7: a 206 carries the ETag a 200 would')
    t.equal(res.headers['cache-control'], 'max-age=600', 'RFC 9110 §15.3.7: and its Cache-Control')
    t.equal(rig.origin.count(PATH), 1)
  })
}

t.test('RFC 9110 §14.2: an overlapping pair is answered faithfully (coalesced, or ignored)', async (t) => {
  const rig = await cached(t)
  const res = await rig.fetch(PATH, { headers: { range: 'bytes=0-99, 50-149' } })
  expectFaithful(t, res, 'bytes=0-99, 50-149')
})

t.test('RFC 9110 §14.2 / §17.15: many overlapping ranges are ignored, rejected or coalesced, never amplified', async (t) => {
  const rig = await cached(t)
  const range = 'bytes=' + Array.from({ length: 10 }, () => '0-999').join(',')
  const res = await rig.fetch(PATH, { headers: { range } })
  expectFaithful(t, res, '10 × 0-999')
  t.ok(res.body.length <= SIZE + 1024, `no amplification: ${res.body.length} bytes for a ${SIZE}-byte object`)
})

t.test('RFC 9110 §14.2 / §17.15: many small ranges out of order are ignored, rejected or answered faithfully', async (t) => {
  const rig = await cached(t)
  const range = 'bytes=' + [9, 3, 7, 1, 5, 0, 8, 2].map((k) => `${k * 400}-${k * 400 + 9}`).join(',')
  const res = await rig.fetch(PATH, { headers: { range } })
  expectFaithful(t, res, range)
})

t.test('maxRanges (default 16): 16 ranges → multipart, 17 → 200 with the whole body', async (t) => {
  const rig = await cached(t)
  const ranges = (n: number): Array<[number, number]> => Array.from({ length: n }, (_, i) => [i * 200, i * 200 + 9])
  const header = (n: number): string => 'bytes=' + ranges(n).map(([s, e]) => `${s}-${e}`).join(',')
  expectMultipart(t, await rig.fetch(PATH, { headers: { range: header(16) } }), ranges(16), '16 ranges')
  const over = await rig.fetch(PATH, { headers: { range: header(17) } })
  checkResponse(t, over, { status: 200, hit: true, headers: { 'content-range': null, 'content-length': String(SIZE) } }, '17 ranges')
  t.ok(over.body.equals(BODY), '17 ranges: the whole body')
})

t.test('maxRanges (configured 4): 4 ranges → multipart, 5 → 200 with the whole body', async (t) => {
  const rig = await cached(t, { maxRanges: 4 })
  const ranges = (n: number): Array<[number, number]> => Array.from({ length: n }, (_, i) => [i * 500, i * 500 + 9])
  const header = (n: number): string => 'bytes=' + ranges(n).map(([s, e]) => `${s}-${e}`).join(',')
  expectMultipart(t, await rig.fetch(PATH, { headers: { range: header(4) } }), ranges(4), '4 ranges')
  const over = await rig.fetch(PATH, { headers: { range: header(5) } })
  t.equal(over.status, 200, '5 ranges: 200')
  t.ok(over.body.equals(BODY), '5 ranges: the whole body')
})

t.test('RFC 9110 §14.1.2: unsatisfiable ranges are dropped; one satisfiable range left → that range', async (t) => {
  const rig = await cached(t)
  const res = await rig.fetch(PATH, { headers: { range: 'bytes=0-9, 5000-5010' } })
  t.equal(res.status, 206)
  expectFaithful(t, res, 'bytes=0-9, 5000-5010')
  const boundary = boundaryOf(res.headers['content-type'])
  if (boundary === undefined) {
    t.equal(res.headers['content-range'], `bytes 0-9/${SIZE}`)
  } else {
    t.same(parseMultipart(res.body, boundary).map((p) => p.headers['content-range']), [`bytes 0-9/${SIZE}`], 'one part (allowed by §15.3.7.2)')
  }
})

t.test('RFC 9110 §15.5.17: no satisfiable range → 416 with Content-Range bytes */length', async (t) => {
  const rig = await cached(t)
  const res = await rig.fetch(PATH, { headers: { range: 'bytes=5000-5010, 6000-' } })
  checkResponse(t, res, { status: 416, headers: { 'content-range': `bytes */${SIZE}` } }, 'unsatisfiable')
})

t.test('RFC 9110 §13.1.5: If-Range that does not match → 200 with the whole body; matching → multipart', async (t) => {
  const rig = await cached(t)
  const stale = await rig.fetch(PATH, { headers: { range: 'bytes=0-9, 2000-2009', 'if-range': '"other"' } })
  t.equal(stale.status, 200)
  t.ok(stale.body.equals(BODY))
  const current = await rig.fetch(PATH, { headers: { range: 'bytes=0-9, 2000-2009', 'if-range': '"blob"' } })
  expectMultipart(t, current, [[0, 9], [2000, 2009]], 'If-Range matches')
})

t.test('RFC 9110 §14.2: several ranges on a miss are answered faithfully, and the object is stored whole', async (t) => {
  const rig = await startRig(t)
  rig.origin.script(PATH, { ...ok({ 'cache-control': 'max-age=600', etag: '"blob"', 'content-type': TYPE }), body: BODY })
  const res = await rig.fetch(PATH, { headers: { range: 'bytes=0-9, 2000-2009' } })
  expectFaithful(t, res, 'miss with two ranges')
  const whole = await rig.fetch(PATH)
  t.ok(isHit(whole) && whole.body.equals(BODY), 'stored whole')
})
