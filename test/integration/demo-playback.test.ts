/**
 * End to end with a real HLS client: the demo CDN (`streamedge start`: origin → shield →
 * edges → control plane) and ffmpeg playing demo titles from their steering URLs. A
 * second playback is served from the edge cache; the origin sees each object once.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { startDemo } from '../../bench/demo.ts'
import { loadConfig } from '../../config/load.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { tempDir } from '../helpers/cache-node.ts'

const run = promisify(execFile)

/** Plays `url` with ffmpeg: every stream of every variant (`map` 0), or the streams `map` names. */
async function play (url: string, seconds?: number, map = '0'): Promise<void> {
  const limit = seconds === undefined ? [] : ['-t', String(seconds)]
  await run('ffmpeg', ['-nostdin', '-v', 'error', '-i', url, '-map', map, '-c', 'copy', ...limit, '-f', 'null', '-'], { timeout: 60_000 })
}

t.test('ffmpeg plays VOD (TS and fMP4) and live titles from the steering URLs; a replay is all edge hits', async (t) => {
  const dir = await tempDir(t)
  const config = loadConfig({ argv: { 'edge.cacheDir': dir, 'log.level': 'warn', 'start.edges': 2 }, env: {} })
  const demo = await startDemo(config)
  t.teardown(() => demo.close())
  const [vod, fmp4, live] = demo.steeringUrls
  const steer = await fetchRaw(vod!)
  t.equal(steer.status, 302)
  const edge = demo.edges.find((e) => steer.headers.location?.startsWith(e.url + '/t/'))
  t.ok(edge, 'the steering URL redirects to a demo edge with a token in the path')
  t.equal((await fetchRaw(`${edge!.url}/vod/bbb-test/master.m3u8`)).status, 403, 'the edge refuses requests that skipped steering')

  await play(vod!)
  await play(fmp4!)
  // One variant, as a player plays it: with every variant at once (-map 0), ffmpeg 5 never ends
  // `-t` when the live loop's EXT-X-DISCONTINUITY falls inside the play (see hls-e2e.test.ts).
  await play(live!, 6, '0:p:0')
  const misses = await edge!.metrics.lookups.value({ result: 'miss' })
  t.ok(misses > 10, `first playback filled the edge (${misses} misses)`)

  await play(vod!)
  t.equal(await edge!.metrics.lookups.value({ result: 'miss' }), misses, 'the replay caused no miss')
  t.ok(await edge!.metrics.lookups.value({ result: 'hit' }) > 10, 'the replay was served from the edge cache')
})
