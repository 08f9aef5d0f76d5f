/**
 * End to end with ffmpeg through the whole demo CDN (`streamedge start`: steering URL →
 * control plane → edge → shield → origin), with the HLS layer on every cache node:
 * - VOD: ffmpeg plays a title from its steering URL; the edge prefetched the segments
 *   ahead of it (prefetch hits), and the origin saw each object once;
 * - pre-positioning: a title prefilled into the shield plays without the origin;
 * - live: ffmpeg plays one variant of the live stream across a loop restart (an
 *   EXT-X-DISCONTINUITY); playlists were admitted as live on edge and shield;
 * - the edge's inventory names the titles it holds.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { startDemo } from '../../bench/demo.ts'
import { promSum } from '../../bench/lib/prometheus-text.ts'
import { loadConfig } from '../../config/load.ts'
import { getInventory, getPrefillJob, startPrefill } from '../../lib/protocol/prefill-client.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { tempDir } from '../helpers/cache-node.ts'
import { until } from '../helpers/hls.ts'

const run = promisify(execFile)
const TOKEN = 'e2e-admin-token'

/** Plays `url` with ffmpeg: every stream of every variant (`map` 0), or the streams `map` names. */
async function play (url: string, seconds?: number, map = '0'): Promise<void> {
  const limit = seconds === undefined ? [] : ['-t', String(seconds)]
  await run('ffmpeg', ['-nostdin', '-v', 'error', '-i', url, '-map', map, '-c', 'copy', ...limit, '-f', 'null', '-'], { timeout: 60_000 })
}

/**
 * Waits until the origin's live window ends on the first segment of a new loop of the
 * title: a player starting now, three segments from the end as ffmpeg does, meets the
 * loop's EXT-X-DISCONTINUITY 8 s into its play (4 s if the window slides once meanwhile).
 */
async function untilLoopRestartAtLiveEdge (originUrl: string, playlistPath: string): Promise<void> {
  const deadline = performance.now() + 40_000
  for (;;) {
    const lines = (await (await fetch(originUrl + playlistPath)).text()).split('\n').filter((line) => line !== '')
    const lastUri = lines.findLastIndex((line) => !line.startsWith('#'))
    const previousUri = lines.slice(0, lastUri).findLastIndex((line) => !line.startsWith('#'))
    if (lines.slice(previousUri + 1, lastUri).includes('#EXT-X-DISCONTINUITY')) return
    if (performance.now() > deadline) throw new Error('timed out waiting for a loop restart at the live edge')
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
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
  t.ok(promSum(edgeMetrics, 'streamedge_hls_prefetches_total', { outcome: 'filled' }) > 0, 'the edge prefetched segments ahead of ffmpeg')
  t.ok(promSum(edgeMetrics, 'streamedge_hls_prefetched_segments_total', { outcome: 'hit' }) > 0, 'and ffmpeg then asked for them')
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

  // The live stream loops its 6-segment VOD title: every 24 s the timestamps restart behind an
  // EXT-X-DISCONTINUITY (RFC 8216 §4.3.2.3), which ffmpeg 5's HLS demuxer ignores. Reading every
  // variant at once (-map 0), it then reads only the variant whose timestamps went back, and
  // `-t` never ends for the others: this step hung until its timeout whenever a restart fell
  // inside the segments it played, i.e. whenever the steps above took 4-12 s (mod 24 s) of the
  // demo's clock, as they can under load. A player plays one variant; so does ffmpeg here,
  // started on purpose where it crosses a restart.
  await untilLoopRestartAtLiveEdge(demo.originUrl, '/live/bbb-test/360p/index.m3u8')
  await play(live!, 8, '0:p:0')
  const liveEdge = await edge.metrics.render()
  const liveShield = await demo.shield.metrics.render()
  t.ok(promSum(liveEdge, 'streamedge_hls_playlists_total', { type: 'live' }) > 0, 'the edge admitted live playlists as live')
  t.ok(promSum(liveShield, 'streamedge_hls_playlists_total', { type: 'live' }) > 0, 'and so did the shield')

  const inventory = await getInventory({ url: edge.url, token: TOKEN, timeoutMs: 5000 })
  if (!inventory.ok) throw new Error(inventory.error)
  const titles = new Map(inventory.value.titles.map((x) => [x.title, x.segments]))
  t.ok((titles.get('/vod/bbb-test/') ?? 0) >= 6, 'the edge inventory names the VOD title')
  t.ok((titles.get('/vod/bars/') ?? 0) >= 6, 'and the fMP4 one')
  t.ok(titles.has('/live/bbb-test/'), 'and the live stream')
})
