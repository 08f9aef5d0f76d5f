/**
 * A browser player end to end: hls.js in headless Chromium, on a page served from its own
 * origin, opens a demo steering URL. That is the path issue 5 warns about: a cross-origin
 * 302 (after which Chromium sends `Origin: null`), playlists and segments from another
 * origin (the edge) with the token in the path, and an HLS Content Steering manifest fetched
 * from the control plane. The player must load the title, fetch its steering manifest and
 * play (the current time advances), with no fatal error.
 *
 * Skips when Chromium is not installed (`apt-get install chromium`; .ci/run installs it).
 */
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { createRequire } from 'node:module'
import t from 'tap'
import { startDemo, type RunningDemo } from '../../bench/demo.ts'
import { loadConfig } from '../../config/load.ts'
import { tempDir } from '../helpers/cache-node.ts'
import { findChromium, openPage, type BrowserPage } from '../helpers/chromium.ts'

const chromium = findChromium()
const require = createRequire(import.meta.url)

interface PlayerReport {
  readonly mseH264: boolean
  readonly levels: number
  readonly frags: readonly string[]
  readonly steering: readonly string[]
  readonly errors: ReadonlyArray<{ type: string, details: string, fatal: boolean, url?: string, code?: number }>
  readonly time: number
}

const PAGE = `<!doctype html>
<meta charset="utf-8">
<video id="v" muted playsinline></video>
<script src="/hls.js"></script>
<script>
const report = window.report = {
  mseH264: MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"'),
  levels: 0, frags: [], steering: [], errors: [], time: 0,
}
const video = document.getElementById('v')
const hls = new Hls({ enableWorker: false })
hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => { report.levels = d.levels.length; video.play().catch(() => {}) })
hls.on(Hls.Events.FRAG_LOADED, (_e, d) => report.frags.push(d.frag.url))
hls.on(Hls.Events.STEERING_MANIFEST_LOADED, (_e, d) => report.steering.push(String(d.url)))
hls.on(Hls.Events.ERROR, (_e, d) => report.errors.push({ type: d.type, details: d.details, fatal: d.fatal, url: d.url || (d.context && d.context.url), code: d.response && d.response.code }))
video.addEventListener('timeupdate', () => { report.time = video.currentTime })
hls.loadSource(new URLSearchParams(location.search).get('src'))
hls.attachMedia(video)
</script>`

/** The demo CDN, a page origin serving hls.js, and Chromium on that page playing `title` (an index into the demo titles). */
async function startPlayer (t: Tap, title: number, overrides: Record<string, unknown> = {}): Promise<{ demo: RunningDemo, page: BrowserPage, steeringUrl: string }> {
  const dir = await tempDir(t)
  const config = loadConfig({ argv: { 'edge.cacheDir': dir, 'log.level': 'error', 'start.edges': 2, ...overrides }, env: {} })
  const demo = await startDemo(config)
  t.teardown(() => demo.close())
  const hlsJs = await readFile(require.resolve('hls.js/dist/hls.min.js'))
  const site = http.createServer((req, res) => {
    if (req.url?.startsWith('/hls.js') === true) {
      res.writeHead(200, { 'content-type': 'text/javascript', 'content-length': hlsJs.length })
      res.end(hlsJs)
      return
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(PAGE)
  })
  site.listen(0, '127.0.0.1')
  await once(site, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { site.closeAllConnections(); site.close(() => resolve()) }))
  const steeringUrl = demo.steeringUrls[title]!
  const pageUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/?src=${encodeURIComponent(steeringUrl)}`
  if (new URL(pageUrl).origin === new URL(steeringUrl).origin) throw new Error('the page must be cross-origin to the control plane')
  const page = await openPage(chromium!, pageUrl)
  t.teardown(() => page.close())
  return { demo, page, steeringUrl }
}

interface Tap { teardown (fn: () => unknown): void }

const skip = chromium === undefined ? 'chromium is not installed (apt-get install chromium)' : false

t.test('hls.js in Chromium plays a title from its steering URL, across origins, and loads the steering manifest', { skip }, async (t) => {
  const { demo, page, steeringUrl } = await startPlayer(t, 0)
  const enoughFrags = 'window.report && (window.report.frags.length >= 3 || window.report.errors.some((e) => e.fatal)) && window.report'
  const loaded = await page.waitFor<PlayerReport>(enoughFrags, 45_000)
  t.same(loaded.errors.filter((e) => e.fatal), [], 'no fatal player error')
  t.ok(loaded.levels >= 1, `hls.js parsed the master playlist (${loaded.levels} levels)`)
  const edgeOrigins = demo.edges.map((e) => new URL(e.url).origin)
  for (const frag of loaded.frags) {
    const url = new URL(frag)
    t.ok(edgeOrigins.includes(url.origin), `segment from a demo edge: ${url.origin}`)
    t.match(url.pathname, /^\/t\/[\w-]+\.[\w-]+\//, 'the token travels in the path')
  }

  const steered = await page.waitFor<PlayerReport>('window.report.steering.length > 0 && window.report', 30_000)
  t.ok(steered.steering[0]?.startsWith(new URL(steeringUrl).origin), `the steering manifest came from the control plane: ${steered.steering[0]}`)

  if (loaded.mseH264) {
    const played = await page.waitFor<PlayerReport>('window.report.time > 2 && window.report', 45_000)
    t.ok(played.time > 2, `playback advanced to ${played.time.toFixed(1)} s`)
  } else {
    t.comment('this Chromium build cannot decode H.264 through MSE: checked loading, not decoding')
  }
  const final = await page.evaluate<PlayerReport>('window.report')
  t.same(final.errors.filter((e) => e.fatal), [], 'still no fatal error')
})

t.test('when its edge stops, hls.js moves to the other edge mid-session (content steering) and keeps playing', { skip }, async (t) => {
  const { demo, page } = await startPlayer(t, 2, {
    'controlPlane.steering.manifestTtlSeconds': 1,
    'controlPlane.probe.intervalMs': 200,
    'controlPlane.probe.failThreshold': 1,
  })
  const started = await page.waitFor<PlayerReport>('window.report && window.report.frags.length >= 2 && window.report.steering.length > 0 && window.report', 45_000)
  const firstOrigin = new URL(started.frags[0]!).origin
  const first = demo.edges.find((e) => new URL(e.url).origin === firstOrigin)
  const other = demo.edges.find((e) => e !== first)
  t.ok(first !== undefined && other !== undefined, `the live stream started on ${firstOrigin}`)
  await first!.close()
  const otherOrigin = new URL(other!.url).origin
  const moved = await page.waitFor<PlayerReport>(`window.report.frags.some((u) => u.startsWith(${JSON.stringify(otherOrigin)})) && window.report`, 45_000)
  t.same(moved.errors.filter((e) => e.fatal), [], 'no fatal error through the failover')
  const timeAtMove = moved.time
  const after = await page.waitFor<PlayerReport>(`window.report.time > ${timeAtMove + 2} && window.report`, 45_000)
  t.ok(after.time > timeAtMove + 2, `playback went on from ${otherOrigin} (${timeAtMove.toFixed(1)} s → ${after.time.toFixed(1)} s)`)
})
