/**
 * Pre-positioning through the admin API of a real edge in front of the demo origin:
 * - a title is fully cached afterwards: with the origin stopped, its master, media
 *   playlists and every segment are hits;
 * - the byte-rate cap holds over the run (within 10 %);
 * - a second run is a resume: everything is already cached, nothing is fetched;
 * - the inventory names the title with its segment count; bad requests and tokens are refused.
 */
import t from 'tap'
import { startOrigin } from '../../bench/origin/origin-server.ts'
import { parsePrefillJobStatus, type PrefillJobStatus } from '../../lib/protocol/prefill.ts'
import { get, startHlsNode, until } from '../helpers/hls.ts'

const TOKEN = 'prefill-test-token'

async function admin (url: string, method: string, body?: unknown, token = TOKEN): Promise<{ status: number, body: any }> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  return { status: res.status, body: await res.json() }
}

async function finished (nodeUrl: string, id: string): Promise<PrefillJobStatus> {
  let status: PrefillJobStatus | undefined
  await until(async () => {
    const answer = await admin(`${nodeUrl}/admin/prefill/${id}`, 'GET')
    const parsed = parsePrefillJobStatus(answer.body)
    if (!parsed.ok) throw new Error(parsed.error)
    status = parsed.value
    return status.finishedAtMs !== undefined
  }, `prefill job ${id}`, 30_000)
  return status!
}

t.test('prefill fills a whole title within the rate cap; with the origin gone every object is a hit', async (t) => {
  const origin = await startOrigin()
  let originOpen = true
  t.teardown(async () => { if (originOpen) await origin.close() })
  const { node } = await startHlsNode(t, { origin: origin.url, adminToken: TOKEN })
  const cap = 2_000_000
  const started = await admin(`${node.url}/admin/prefill`, 'POST', { titles: ['/vod/bbb-test/'], bytesPerSecond: cap, concurrency: 4 })
  t.equal(started.status, 202)
  t.match(started.body, { id: /^pf-/, titles: ['/vod/bbb-test/'], bytesPerSecond: cap })
  const done = await finished(node.url, started.body.id)
  t.match(done, { state: 'done', playlists: 2, segmentsTotal: 12, segmentsFilled: 12, segmentsFailed: 0, errors: [] })
  const seconds = (done.finishedAtMs! - done.createdAtMs) / 1000
  const rate = done.bytes / seconds
  t.ok(done.bytes > 2_000_000, `${done.bytes} bytes of segments fetched`)
  t.ok(rate <= cap * 1.1, `${Math.round(rate)} B/s over ${seconds} s, cap ${cap} B/s`)

  const counts = await (await fetch(`${origin.url}/_origin/counts`)).json() as Record<string, number>
  t.ok(Object.entries(counts).every(([, n]) => n === 1), 'the origin saw each object once')
  await origin.close()
  originOpen = false

  const paths = ['/vod/bbb-test/master.m3u8']
  for (const rendition of ['360p', '180p']) {
    paths.push(`/vod/bbb-test/${rendition}/index.m3u8`)
    for (let i = 0; i < 6; i++) paths.push(`/vod/bbb-test/${rendition}/seg-${i}.ts`)
  }
  for (const path of paths) {
    const res = await get(node.url + path)
    t.equal(res.status, 200, path)
    t.match(String(res.headers['cache-status']), /; hit/, `${path} is a hit`)
  }

  const again = await admin(`${node.url}/admin/prefill`, 'POST', { titles: ['/vod/bbb-test/master.m3u8'] })
  t.match(await finished(node.url, again.body.id), { state: 'done', segmentsCached: 12, segmentsFilled: 0, bytes: 0 }, 'a re-run resumes: nothing left to fetch, even with the origin gone')

  const inventory = await admin(`${node.url}/admin/inventory`, 'GET')
  t.equal(inventory.status, 200)
  t.match(inventory.body, { v: 1, node: 'test-edge', titles: [{ title: '/vod/bbb-test/', segments: 12 }] })

  const metrics = (await get(`${node.url}/metrics`)).body.toString()
  t.match(metrics, /streamedge_hls_prefill_segments_total\{outcome="filled",role="edge",node="test-edge"\} 12/)
  t.match(metrics, /streamedge_hls_prefill_jobs\{state="done",role="edge",node="test-edge"\} 2/)
})

t.test('the admin API refuses bad requests, wrong tokens and unknown jobs; jobs can be listed and cancelled', async (t) => {
  const origin = await startOrigin()
  t.teardown(() => origin.close())
  const { node } = await startHlsNode(t, { origin: origin.url, adminToken: TOKEN })
  t.equal((await admin(`${node.url}/admin/prefill`, 'POST', { titles: ['/vod/bbb-test/'] }, 'wrong')).status, 401)
  t.match(await admin(`${node.url}/admin/prefill`, 'POST', { titles: ['vod'] }), { status: 400, body: { error: /titles/ } })
  t.match(await admin(`${node.url}/admin/prefill`, 'POST', { titles: ['/a/'], window: 'soon' }), { status: 400, body: { error: /window/ } })
  t.match(await admin(`${node.url}/admin/prefill/nope`, 'GET'), { status: 404 })
  t.match(await admin(`${node.url}/admin/prefill`, 'PUT', {}), { status: 405 })
  t.match(await admin(`${node.url}/admin/inventory`, 'POST', {}), { status: 405 })
  t.match(await admin(`${node.url}/admin/nothing`, 'GET'), { status: 404 })
  const slow = await admin(`${node.url}/admin/prefill`, 'POST', { titles: ['/vod/bars/'], bytesPerSecond: 1000 })
  const cancelled = await admin(`${node.url}/admin/prefill/${slow.body.id}`, 'DELETE')
  t.match(cancelled, { status: 200, body: { state: 'cancelled' } })
  const missing = await admin(`${node.url}/admin/prefill`, 'POST', { titles: ['/vod/none/'] })
  t.match(await finished(node.url, missing.body.id), { state: 'failed', errors: ['/vod/none/master.m3u8: HTTP 404'] })
  const list = await admin(`${node.url}/admin/prefill`, 'GET')
  t.same(list.body.jobs.map((j: PrefillJobStatus) => j.state), ['cancelled', 'failed'])
})
