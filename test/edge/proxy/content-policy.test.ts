/**
 * The content-policy seam (what HLS rules plug into) and `warm`, driven through a real
 * node with a scripted origin: buffered responses judged before readers see them,
 * keep-stored, lifetime overrides, refresh-ahead, onServed, and warm's outcomes.
 */
import t from 'tap'
import type { AdmitDecision, ContentPolicy, PolicyResponse } from '../../../edge/proxy/content-policy.ts'
import { fetchRaw } from '../../helpers/http-client.ts'
import { startTestNode } from '../../helpers/cache-node.ts'
import { startScriptedOrigin } from '../../helpers/scripted-origin.ts'

interface Recorder extends ContentPolicy {
  readonly served: Array<[string, number]>
  readonly admitted: string[]
}

function policy (overrides: Partial<ContentPolicy> = {}): Recorder {
  const served: Array<[string, number]> = []
  const admitted: string[] = []
  return {
    served,
    admitted,
    bufferWhole: (res: PolicyResponse) => res.url.endsWith('.m3u8'),
    admit: (res: PolicyResponse, body: Buffer): AdmitDecision => {
      admitted.push(res.url)
      if (body.toString().includes('REGRESSED')) return { action: 'keep-stored', reason: 'test-regressed' }
      if (body.toString().includes('JUNK')) return { action: 'reject', reason: 'test-junk' }
      return res.url.endsWith('.m3u8') ? { action: 'store', lifetimeSeconds: 2 } : { action: 'store' }
    },
    refreshAhead: () => false,
    onServed: (url: string, status: number) => { served.push([url, status]) },
    ...overrides,
  }
}

t.test('a buffered response the policy refuses is replaced, for every reader, by the stored one', async (t) => {
  let now = Date.now()
  const origin = await startScriptedOrigin(t)
  origin.script('/live.m3u8',
    { status: 200, headers: { 'cache-control': 'max-age=60', etag: '"a"' }, body: '#EXTM3U seq=10' },
    { status: 200, headers: { 'cache-control': 'max-age=60', etag: '"b"' }, body: '#EXTM3U seq=9 REGRESSED', delayMs: 100 },
    { status: 200, headers: { 'cache-control': 'max-age=60', etag: '"c"' }, body: '#EXTM3U seq=11' })
  const rec = policy()
  const edge = await startTestNode(t, { origin: origin.url, now: () => now, contentPolicy: () => rec })
  t.equal((await fetchRaw(edge.url + '/live.m3u8')).body.toString(), '#EXTM3U seq=10')
  now += 3_000 // past the policy's 2 s lifetime (the origin said 60 s)
  const readers = await Promise.all([1, 2, 3].map(() => fetchRaw(edge.url + '/live.m3u8')))
  for (const r of readers) {
    t.equal(r.body.toString(), '#EXTM3U seq=10', 'no reader saw the refused body')
    t.match(r.headers['cache-status'], /detail=test-regressed/)
  }
  t.equal(origin.count('/live.m3u8'), 2, 'one upstream request for the three readers')
  t.equal(await edge.metrics.admissionRejections.value({ reason: 'test-regressed' }), 1)
  const next = await fetchRaw(edge.url + '/live.m3u8')
  t.equal(next.body.toString(), '#EXTM3U seq=11', 'the stored one stayed stale, so the next request refetched')
  t.match(next.headers['cache-status'], /stored/)
})

t.test('reject keeps a response out of storage; lifetimeSeconds overrides the computed lifetime; onServed sees every GET', async (t) => {
  let now = Date.now()
  const origin = await startScriptedOrigin(t)
  origin.script('/a.m3u8', { status: 200, headers: { 'cache-control': 'max-age=600' }, body: '#EXTM3U' })
  origin.script('/junk.ts', { status: 200, headers: { 'cache-control': 'max-age=600' }, body: 'JUNK' })
  const rec = policy()
  const edge = await startTestNode(t, { origin: origin.url, now: () => now, contentPolicy: () => rec })
  await fetchRaw(edge.url + '/a.m3u8')
  now += 1_000
  t.match((await fetchRaw(edge.url + '/a.m3u8')).headers['cache-status'], /hit; ttl=[01]$/, 'the policy lifetime (2 s), not max-age=600')
  now += 2_000
  t.match((await fetchRaw(edge.url + '/a.m3u8')).headers['cache-status'], /fwd=/, 'expired after 2 s')
  await fetchRaw(edge.url + '/junk.ts')
  await fetchRaw(edge.url + '/junk.ts')
  t.equal(origin.count('/junk.ts'), 2, 'rejected: never stored')
  t.same(rec.served, [['/a.m3u8', 200], ['/a.m3u8', 200], ['/a.m3u8', 200], ['/junk.ts', 200], ['/junk.ts', 200]])
})

t.test('refreshAhead: a fresh hit triggers one background refresh while clients keep getting hits', async (t) => {
  let now = Date.now()
  const origin = await startScriptedOrigin(t)
  origin.script('/p.m3u8',
    { status: 200, headers: { 'cache-control': 'max-age=10' }, body: 'one' },
    { status: 200, headers: { 'cache-control': 'max-age=10' }, body: 'two', delayMs: 100 })
  const edge = await startTestNode(t, {
    origin: origin.url,
    now: () => now,
    contentPolicy: () => policy({ bufferWhole: () => false, admit: () => ({ action: 'store' }), refreshAhead: (meta, nowMs) => nowMs - meta.responseTimeMs > 5_000 }),
  })
  await fetchRaw(edge.url + '/p.m3u8')
  now += 6_000
  const hits = await Promise.all([1, 2, 3, 4].map(() => fetchRaw(edge.url + '/p.m3u8')))
  for (const h of hits) {
    t.equal(h.body.toString(), 'one')
    t.match(h.headers['cache-status'], /; hit/)
  }
  await origin.waitForRequests('/p.m3u8', 2)
  for (let i = 0; i < 50 && (await fetchRaw(edge.url + '/p.m3u8')).body.toString() !== 'two'; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal((await fetchRaw(edge.url + '/p.m3u8')).body.toString(), 'two', 'the refreshed copy replaced it')
  t.equal(origin.count('/p.m3u8'), 2, 'one refresh for all the hits')
})

t.test('warm: filled, then cached; joins a fill under way; reports not-stored and failed', async (t) => {
  const origin = await startScriptedOrigin(t)
  origin.script('/w/seg1.bin', { status: 200, headers: { 'cache-control': 'max-age=60' }, body: 'x'.repeat(1000) })
  origin.script('/w/slow.bin', { status: 200, headers: { 'cache-control': 'max-age=60' }, body: 'slow', delayMs: 150 })
  origin.script('/w/private.ts', { status: 200, headers: { 'cache-control': 'private' }, body: 'p' })
  origin.script('/w/gone.ts', { status: 200, body: 'cut', reset: true })
  origin.script('/w/notts.ts', { status: 200, headers: { 'cache-control': 'max-age=60' }, body: 'not a transport stream' })
  const edge = await startTestNode(t, { origin: origin.url })
  t.same(await edge.proxy.warm('/w/seg1.bin'), { result: 'filled', status: 200, bytes: 1000 })
  t.same(await edge.proxy.warm('/w/seg1.bin'), { result: 'cached', status: 200, bytes: 0 })
  const client = fetchRaw(edge.url + '/w/slow.bin')
  await origin.waitForRequests('/w/slow.bin', 1)
  t.same(await edge.proxy.warm('/w/slow.bin'), { result: 'joined', status: 200, bytes: 4 })
  t.equal((await client).body.toString(), 'slow')
  t.equal(origin.count('/w/slow.bin'), 1)
  t.equal((await edge.proxy.warm('/w/private.ts')).result, 'not-stored')
  t.equal((await edge.proxy.warm('/w/notts.ts')).result, 'not-stored', 'failed admission (MPEG-TS check) is not-stored')
  t.equal((await edge.proxy.warm('/w/gone.ts')).result, 'failed')
  t.match(origin.last('/w/seg1.bin')?.headers.via, /streamedge-test-edge/, 'warm-ups say who asked')
})
