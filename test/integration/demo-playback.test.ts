/**
 * End to end with a real HLS client: the demo CDN (`streamedge start`) and ffmpeg
 * playing demo titles through an edge. A second playback is served from the edge
 * cache without touching the origin.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { startDemo } from '../../bench/demo.ts'
import { loadConfig } from '../../config/load.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { tempDir } from '../helpers/cache-node.ts'

const run = promisify(execFile)

async function play (url: string, seconds?: number): Promise<void> {
  const limit = seconds === undefined ? [] : ['-t', String(seconds)]
  await run('ffmpeg', ['-nostdin', '-v', 'error', '-i', url, '-map', '0', '-c', 'copy', ...limit, '-f', 'null', '-'], { timeout: 60_000 })
}

t.test('ffmpeg plays VOD (TS and fMP4) and live titles through an edge; a replay is all cache hits', async (t) => {
  const dir = await tempDir(t)
  const config = loadConfig({ argv: { 'edge.cacheDir': dir, 'log.level': 'warn', 'start.edges': 1 }, env: {} })
  const demo = await startDemo(config)
  t.teardown(() => demo.close())
  const edge = demo.edges[0]!
  const master = await fetchRaw(`${edge.url}/vod/bbb-test/master.m3u8`)
  t.equal(master.status, 200)
  t.match(master.body.toString(), /#EXTM3U/)

  await play(`${edge.url}/vod/bbb-test/master.m3u8`)
  await play(`${edge.url}/vod/bars/master.m3u8`)
  await play(`${edge.url}/live/bbb-test/master.m3u8`, 6)
  const misses = await edge.metrics.lookups.value({ result: 'miss' })
  t.ok(misses > 10, `first playback filled the cache (${misses} misses)`)

  await play(`${edge.url}/vod/bbb-test/master.m3u8`)
  t.equal(await edge.metrics.lookups.value({ result: 'miss' }), misses, 'the replay caused no miss')
  t.ok(await edge.metrics.lookups.value({ result: 'hit' }) > 10, 'the replay was served from cache')
})
