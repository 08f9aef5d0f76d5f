/**
 * End to end with ffmpeg through the whole demo CDN (`streamedge start`: steering URL →
 * control plane → edge → shield → origin), with the HLS layer on every cache node:
 * - VOD: ffmpeg plays a title from its steering URL; the edge prefetched the segments
 *   ahead of it (prefetch hits), and the origin saw each object once;
 * - pre-positioning: a title prefilled into the shield plays without the origin;
 * - live: ffmpeg plays the live stream; playlists were admitted as live on edge and shield;
 * - the edge's inventory names the titles it holds.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { startDemo } from '../../bench/demo.ts'
import { loadConfig } from '../../config/load.ts'
import { getInventory, getPrefillJob, startPrefill } from '../../lib/protocol/prefill-client.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { tempDir } from '../helpers/cache-node.ts'
import { until } from '../helpers/hls.ts'

const run = promisify(execFile)
const TOKEN = 'e2e-admin-token'

async function play (url: string, seconds?: number): Promise<void> {
  const limit = seconds === undefined ? [] : ['-t', String(seconds)]
  await run('ffmpeg', ['-nostdin', '-v', 'error', '-i', url, '-map', '0', '-c', 'copy', ...limit, '-f', 'null', '-'], { timeout: 60_000 })
}

/** One sample of a Prometheus text exposition, summed over the label sets that match. */
function sample (text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue
    sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

async function originCounts (originUrl: string): Promise<Record<string, number>> {
  return await (await fetch(`${originUrl}/_origin/counts`)).json() as Record<string, number>
}

t.test('ffmpeg through steering → edge → shield → origin, with prefetch, prefill and live rules', async (t) => {
  const dir = await tempDir(t)
  const config = loadConfig({ argv: { 'edge.cacheDir': dir, 'log.level': 'warn', 'start.edges': 1, 'edge.admin.token': TOKEN, 'shield.admin.token': TOKEN }, env: {} })
  const demo = await startDemo(config)
  t.teardown(() => demo.close())
  const [vod, fmp4, live] = demo.steeringUrls
  const steer = await fetchRaw(vod!)
  t.equal(steer.status, 302, 'the steering URL redirects')
  const edge = demo.edges[0]!
  t.ok(steer.headers.location?.startsWith(`${edge.url}/t/`), 'to the edge, with a token in the path')

  await play(vod!)
  const edgeMetrics = await edge.metrics.render()
  t.ok(sample(edgeMetrics, 'streamedge_hls_prefetches_total', { outcome: 'filled' }) > 0, 'the edge prefetched segments ahead of ffmpeg')
  t.ok(sample(edgeMetrics, 'streamedge_hls_prefetched_segments_total', { outcome: 'hit' }) > 0, 'and ffmpeg then asked for them')
  const counts = await originCounts(demo.originUrl)
  const vodObjects = Object.entries(counts).filter(([path]) => path.startsWith('/vod/bbb-test/'))
  t.ok(vodObjects.length >= 8, `${vodObjects.length} objects of the title reached the origin`)
  t.same(vodObjects.filter(([, n]) => n !== 1), [], 'each exactly once (prefetch and player coalesced at edge and shield)')

  const job = await startPrefill({ url: demo.shield.url, token: TOKEN, timeoutMs: 5000 }, { titles: ['/vod/bars/'] })
  if (!job.ok) throw new Error(job.error)
  await until(async () => {
    const status = await getPrefillJob({ url: demo.shield.url, token: TOKEN, timeoutMs: 5000 }, job.value.id)
    return status.ok && status.value.finishedAtMs !== undefined
  }, 'the shield prefill', 30_000)
  const before = await originCounts(demo.originUrl)
  t.ok(Object.keys(before).filter((p) => p.startsWith('/vod/bars/')).length >= 14, 'the shield holds the fMP4 title')
  await play(fmp4!)
  const after = await originCounts(demo.originUrl)
  const newBars = Object.entries(after).filter(([path, n]) => path.startsWith('/vod/bars/') && n !== before[path])
  t.same(newBars, [], 'playing the prefilled title never reached the origin')

  await play(live!, 8)
  const liveEdge = await edge.metrics.render()
  const liveShield = await demo.shield.metrics.render()
  t.ok(sample(liveEdge, 'streamedge_hls_playlists_total', { type: 'live' }) > 0, 'the edge admitted live playlists as live')
  t.ok(sample(liveShield, 'streamedge_hls_playlists_total', { type: 'live' }) > 0, 'and so did the shield')

  const inventory = await getInventory({ url: edge.url, token: TOKEN, timeoutMs: 5000 })
  if (!inventory.ok) throw new Error(inventory.error)
  const titles = new Map(inventory.value.titles.map((x) => [x.title, x.segments]))
  t.ok((titles.get('/vod/bbb-test/') ?? 0) >= 6, 'the edge inventory names the VOD title')
  t.ok((titles.get('/vod/bars/') ?? 0) >= 6, 'and the fMP4 one')
  t.ok(titles.has('/live/bbb-test/'), 'and the live stream')
})
