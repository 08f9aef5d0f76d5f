/**
 * Byte ranges (RFC 9110 §14) through the edge, byte-exact: on memory hits, on disk
 * hits, and during a fill (served as soon as the fill reaches the offset).
 */
import t, { type Test } from 'tap'
import { startOrigin } from '../../../bench/origin/origin-server.ts'
import { syntheticBody } from '../../../bench/origin/synthetic-body.ts'
import { fetchRaw } from '../../helpers/http-client.ts'
import { startTestNode } from '../../helpers/cache-node.ts'

const SIZE = 188 * 1600 // MPEG-TS bodies are whole 188-byte packets
const PATH = `/synthetic/range-${SIZE}.ts`
const BODY = syntheticBody('range', SIZE, 'ts')

interface Case {
  readonly name: string
  readonly range: string
  readonly status: number
  readonly slice?: readonly [number, number]
  readonly contentRange?: string
}

const CASES: readonly Case[] = [
  { name: 'RFC 9110 §14.1.2 first-last', range: 'bytes=0-99', status: 206, slice: [0, 99], contentRange: `bytes 0-99/${SIZE}` },
  { name: 'mid-object', range: 'bytes=150000-150187', status: 206, slice: [150000, 150187], contentRange: `bytes 150000-150187/${SIZE}` },
  { name: 'open-ended a-', range: 'bytes=299000-', status: 206, slice: [299000, SIZE - 1], contentRange: `bytes 299000-${SIZE - 1}/${SIZE}` },
  { name: 'suffix -n', range: 'bytes=-500', status: 206, slice: [SIZE - 500, SIZE - 1], contentRange: `bytes ${SIZE - 500}-${SIZE - 1}/${SIZE}` },
  { name: 'last beyond the end is clamped', range: 'bytes=299990-400000', status: 206, slice: [299990, SIZE - 1], contentRange: `bytes 299990-${SIZE - 1}/${SIZE}` },
  { name: 'suffix longer than the body means the whole body', range: 'bytes=-999999', status: 206, slice: [0, SIZE - 1], contentRange: `bytes 0-${SIZE - 1}/${SIZE}` },
  { name: 'RFC 9110 §15.5.17 unsatisfiable → 416 bytes */len', range: `bytes=${SIZE}-`, status: 416, contentRange: `bytes */${SIZE}` },
  { name: 'malformed Range is ignored → 200', range: 'bytes=abc', status: 200, slice: [0, SIZE - 1] },
  { name: 'unknown unit is ignored → 200', range: 'items=0-5', status: 200, slice: [0, SIZE - 1] },
  { name: 'reversed range is invalid → 200', range: 'bytes=500-100', status: 200, slice: [0, SIZE - 1] },
]

async function check (t: Test, url: string, c: Case): Promise<void> {
  const res = await fetchRaw(url, { headers: { range: c.range } })
  t.equal(res.status, c.status, `${c.name}: status`)
  t.equal(res.error, undefined, `${c.name}: complete response`)
  if (c.contentRange !== undefined) t.equal(res.headers['content-range'], c.contentRange, `${c.name}: Content-Range`)
  if (c.slice !== undefined) {
    const expected = BODY.subarray(c.slice[0], c.slice[1] + 1)
    t.ok(res.body.equals(expected), `${c.name}: bytes ${c.slice[0]}-${c.slice[1]} exact`)
    t.equal(res.headers['content-length'], String(expected.length), `${c.name}: Content-Length`)
  }
}

async function setup (t: Test) {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const edge = await startTestNode(t, { origin: origin.url })
  return { origin, edge }
}

t.test('ranges on a memory hit', async (t) => {
  const { origin, edge } = await setup(t)
  await fetchRaw(edge.url + PATH)
  for (const c of CASES) await check(t, edge.url + PATH, c)
  t.equal(origin.count(PATH), 1, 'all ranges served from cache')
})

t.test('ranges on a disk hit (memory tier too small for the object)', async (t) => {
  const { origin, edge } = await setup(t)
  await edge.close()
  const diskOnly = await startTestNode(t, { origin: origin.url, memoryMaxObjectBytes: 1000 })
  await fetchRaw(diskOnly.url + PATH)
  // The object is written to disk in the background; wait until a hit comes from disk.
  for (let i = 0; i < 50 && diskOnly.store.disk.count === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  for (const c of CASES) await check(t, diskOnly.url + PATH, c)
  t.equal(origin.count(PATH), 1)
  t.ok(await diskOnly.metrics.lookups.value({ result: 'hit', tier: 'disk' }) >= CASES.length)
})

t.test('ranges during a fill are served as the fill reaches them', async (t) => {
  const { origin, edge } = await setup(t)
  for (const c of CASES) {
    const path = `/synthetic/range-${SIZE}.ts?case=${encodeURIComponent(c.name)}`
    origin.setFault(`/synthetic/range-${SIZE}.ts`, { bytesPerSecond: 2 * 1024 * 1024, times: 1 })
    const whole = fetchRaw(edge.url + path)
    await new Promise((resolve) => setTimeout(resolve, 20))
    await check(t, edge.url + path, c)
    t.equal((await whole).body.length, SIZE)
  }
  t.equal(origin.count(PATH), CASES.length, 'one fill per distinct key, ranges joined it')
})

t.test('an early range during a slow fill arrives long before the fill ends', async (t) => {
  const { origin, edge } = await setup(t)
  const size = 188 * 5577
  const path = `/synthetic/earlyrange-${size}.ts`
  origin.setFault(path, { bytesPerSecond: 1024 * 1024 }) // ~1 s for the whole body
  const whole = fetchRaw(edge.url + path)
  await new Promise((resolve) => setTimeout(resolve, 20))
  const head = await fetchRaw(edge.url + path, { headers: { range: 'bytes=0-1023' } })
  t.equal(head.status, 206)
  t.ok(head.body.equals(syntheticBody('earlyrange', size, 'ts').subarray(0, 1024)))
  const done = await whole
  t.ok(head.endAt < done.endAt - 200, 'the range completed well before the fill did')
  t.match(head.headers['cache-status'], /collapsed/)
})

t.test('If-Range (RFC 9110 §13.1.5): strong validator match → 206, mismatch or weak → 200', async (t) => {
  const { edge } = await setup(t)
  const first = await fetchRaw(edge.url + PATH)
  const etag = String(first.headers.etag)
  t.match(etag, /^"/, 'origin sends a strong ETag')
  const match = await fetchRaw(edge.url + PATH, { headers: { range: 'bytes=0-9', 'if-range': etag } })
  t.equal(match.status, 206)
  t.equal(match.body.length, 10)
  const other = await fetchRaw(edge.url + PATH, { headers: { range: 'bytes=0-9', 'if-range': '"something-else"' } })
  t.equal(other.status, 200)
  t.equal(other.body.length, SIZE)
  const weak = await fetchRaw(edge.url + PATH, { headers: { range: 'bytes=0-9', 'if-range': `W/${etag}` } })
  t.equal(weak.status, 200, 'a weak validator never matches If-Range')
  const date = await fetchRaw(edge.url + PATH, { headers: { range: 'bytes=0-9', 'if-range': String(first.headers['last-modified']) } })
  t.equal(date.status, 206, 'an exact Last-Modified date matches')
})

t.test('HEAD with Range (RFC 9110 §14.2: range handling is defined for GET only) gives the 200 head', async (t) => {
  const { edge } = await setup(t)
  await fetchRaw(edge.url + PATH)
  const res = await fetchRaw(edge.url + PATH, { method: 'HEAD', headers: { range: 'bytes=10-19' } })
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], String(SIZE))
  t.equal(res.headers['content-range'], undefined)
  t.equal(res.body.length, 0)
})

t.test('range offset guard: a cold mid-file range goes upstream alone, fast, pulling only its bytes', async (t) => {
  const { origin, edge } = await setup(t)
  const size = 188 * 44620 // ~8 MiB
  const path = `/synthetic/coldrange-${size}.ts`
  origin.setFault(path, { bytesPerSecond: 4 * 1024 * 1024 }) // the whole object would take ~2 s
  const start = 6 * 1024 * 1024
  const res = await fetchRaw(edge.url + path, { headers: { range: `bytes=${start}-${start + 65535}` } })
  t.equal(res.status, 206)
  t.ok(res.body.equals(syntheticBody('coldrange', size, 'ts').subarray(start, start + 65536)), 'exact bytes')
  t.equal(res.headers['content-range'], `bytes ${start}-${start + 65535}/${size}`)
  t.match(res.headers['cache-status'], /fwd=uri-miss; fwd-status=206; detail=range-offset/)
  t.ok(res.endAt - res.startedAt < 1000, 'did not wait for the object up to the offset (about 1.5 s at the origin rate)')
  t.equal(origin.count(path), 1)
  t.equal(edge.proxy.fillsInFlight, 0, 'no whole-object fill was started')
  const near = await fetchRaw(edge.url + path, { headers: { range: 'bytes=0-1023' } })
  t.equal(near.status, 206, 'a range near the start still fills (and caches) the object')
  t.match(near.headers['cache-status'], /stored/)
})
