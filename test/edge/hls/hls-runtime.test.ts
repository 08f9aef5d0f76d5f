/**
 * The composed HLS layer driven directly, over a real memory tier and a real disk tier in a
 * temp dir (the parts of a node the runtime reads), with a warm that stores what a scripted
 * "origin" holds, as the pipeline's warm does:
 * - prefill reads the playlists it warmed from the store: from memory, behind a Vary marker,
 *   streamed from disk (bounded by maxPlaylistBytes), a damaged file, a stored error, no node;
 * - the rendition index answers for masters and VOD playlists afterwards; live ones are re-read;
 * - the admin routes (prefill, inventory): answers, 405s with Allow, unknown and malformed ids;
 * - the inventory over memory, disk and writes in flight; gauges; policyFor again and close.
 */
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DiskStore, type DiskReadMode } from '../../../edge/cache/disk-store.ts'
import { MemoryStore } from '../../../edge/cache/memory-store.ts'
import { hashKey, objectRelativePath } from '../../../edge/cache/object-file.ts'
import type { MemoryObject } from '../../../edge/cache/types.ts'
import { makeVaryMarker, variantKey } from '../../../edge/cache/vary.ts'
import { HlsRuntime, type HlsNodeView, type HlsRuntimeOptions } from '../../../edge/hls/hls-runtime.ts'
import { normalizePlaylistUrls, parsePlaylist } from '../../../edge/hls/playlist.ts'
import type { Warm, WarmOutcome } from '../../../edge/hls/warm.ts'
import { silentLogger } from '../../../lib/log.ts'
import type { PrefillJobStatus } from '../../../lib/protocol/prefill.ts'
import type { AdminAnswer } from '../../../edge/proxy/admin.ts'
import { flipByte } from '../../helpers/flip-byte.ts'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const T0 = 1_767_225_600_000

function media (segments: string[], { live = false, map = true } = {}): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:7', '#EXT-X-TARGETDURATION:4', '#EXT-X-MEDIA-SEQUENCE:0']
  if (map) lines.push('#EXT-X-MAP:URI="init.mp4"')
  for (const s of segments) lines.push('#EXTINF:4.0,', s)
  if (!live) lines.push('#EXT-X-ENDLIST')
  return lines.join('\n') + '\n'
}

const MASTER = [
  '#EXTM3U',
  '#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360',
  '360p/index.m3u8',
  '#EXT-X-STREAM-INF:BANDWIDTH=2400000,RESOLUTION=1280x720',
  '720p/index.m3u8',
  '',
].join('\n')

/** Where the warm stores an object: memory and disk (as a fill does), disk only, or memory behind a Vary marker. */
type Placement = 'memory' | 'disk' | 'vary'

interface Fixture {
  readonly body: string | Buffer
  readonly status?: number
  readonly place?: Placement
}

interface Rig {
  readonly hls: HlsRuntime
  readonly memory: MemoryStore
  readonly disk: DiskStore
  readonly dir: string
  readonly view: HlsNodeView
  readonly origin: Map<string, Fixture>
  readonly warmed: string[]
  warm: Warm
}

function object (key: string, body: Buffer, status = 200): MemoryObject {
  const contentType = key.includes('.m3u8') ? 'application/vnd.apple.mpegurl' : 'video/mp2t'
  return {
    meta: {
      key,
      status,
      headers: { 'content-type': contentType },
      bodyBytes: body.length,
      requestTimeMs: T0,
      responseTimeMs: T0,
      initialAgeSeconds: 0,
      freshnessLifetimeSeconds: 600,
    },
    body,
  }
}

async function rig (t: Tap, options: Partial<HlsRuntimeOptions> = {}, diskMode: DiskReadMode = 'stream'): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-hls-runtime-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const memory = new MemoryStore({ maxBytes: 64 * 1024 * 1024 })
  const disk = new DiskStore({ dir, maxBytes: 64 * 1024 * 1024 })
  await disk.open()
  await disk.indexReady
  t.teardown(() => disk.close())
  const hls = new HlsRuntime({ nodeId: 'edge-rt', logger: silentLogger(), stripQueryParams: ['session'], now: () => T0, ...options })
  t.teardown(() => hls.close())
  const view: HlsNodeView = {
    store: {
      getFromMemory: (key) => memory.get(key),
      getFromDisk: (key) => disk.get(key, diskMode),
      memory,
      disk,
    },
  }
  const origin = new Map<string, Fixture>()
  const warmed: string[] = []
  const r: Rig = {
    hls, memory, disk, dir, view, origin, warmed,
    // What CacheProxy.warm does, minus HTTP: already cached, or fetched and stored where the fixture says.
    warm: async (url) => {
      warmed.push(url)
      const fixture = origin.get(url)
      if (fixture === undefined) return { result: 'failed', bytes: 0 }
      if (memory.peek(url) !== undefined || disk.has(url)) return { result: 'cached', bytes: 0 }
      const body = Buffer.from(fixture.body)
      const status = fixture.status ?? 200
      if (status !== 200) return { result: 'not-stored', status, bytes: body.length }
      await place(r, url, body, fixture.place ?? 'memory')
      return { result: 'filled', status, bytes: body.length }
    },
  }
  return r
}

async function place (r: Rig, key: string, body: Buffer, where: Placement, status = 200): Promise<void> {
  if (where === 'vary') {
    const names = ['accept-encoding']
    r.memory.put(makeVaryMarker(key, names, T0))
    r.memory.put(object(variantKey(key, names, {}), body, status))
    return
  }
  if (where === 'memory') r.memory.put(object(key, body, status))
  await r.disk.put(object(key, body, status))
}

function vodTitle (r: Rig, title: string, placements: { master?: Placement, low?: Placement, high?: Placement } = {}): string[] {
  r.origin.set(`${title}master.m3u8`, { body: MASTER, place: placements.master ?? 'memory' })
  const segments: string[] = []
  for (const [rendition, where] of [['360p', placements.low], ['720p', placements.high]] as const) {
    const names = ['seg-0.ts', 'seg-1.ts', 'seg-2.ts']
    r.origin.set(`${title}${rendition}/index.m3u8`, { body: media(names), place: where ?? 'memory' })
    for (const name of ['init.mp4', ...names]) {
      r.origin.set(`${title}${rendition}/${name}`, { body: `${rendition}/${name}` })
      segments.push(`${title}${rendition}/${name}`)
    }
  }
  return segments
}

async function route (r: Rig, name: string, method: string, rest = '', body?: unknown): Promise<AdminAnswer> {
  const handler = r.hls.adminRoutes.get(name)
  if (handler === undefined) throw new Error(`no route ${name}`)
  return await handler.handle({ method, rest, query: new URLSearchParams(), body })
}

/** Starts a prefill job through the admin route and waits (bounded) for it to finish. */
async function prefill (r: Rig, request: Record<string, unknown>): Promise<PrefillJobStatus> {
  const started = await route(r, 'prefill', 'POST', '', request)
  if (started.status !== 202) throw new Error(`prefill refused: ${JSON.stringify(started)}`)
  const id = (started.body as PrefillJobStatus).id
  for (let i = 0; i < 5000; i++) {
    const status = r.hls.prefiller?.get(id)
    if (status?.finishedAtMs !== undefined) return status
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  throw new Error(`prefill job ${id} did not finish`)
}

t.test('before a policy is made: prefill is not ready, the inventory is empty and names the node', async (t) => {
  const r = await rig(t)
  t.same([...r.hls.adminRoutes.keys()].sort(), ['inventory', 'prefill'])
  t.equal(r.hls.prefiller, undefined)
  t.equal(r.hls.prefetcher, undefined)
  t.same(await route(r, 'prefill', 'GET'), { status: 503, body: { error: 'prefill is not ready' } })
  t.same(await route(r, 'inventory', 'GET'), { status: 200, body: { v: 1, node: 'edge-rt', generatedAtMs: T0, titles: [] } }, 'not attached: nothing held')
})

t.test('normalize: the cache-key form, with the configured query parameters stripped', async (t) => {
  const r = await rig(t)
  t.equal(r.hls.normalize('/vod/t/./360p/../master.m3u8?session=abc'), '/vod/t/master.m3u8')
  t.equal(r.hls.normalize('/vod/t/master.m3u8?b=2&session=x&a=1'), '/vod/t/master.m3u8?a=1&b=2', 'and the rest sorted')
  t.equal(r.hls.normalize('/vod/%74/master.m3u8'), '/vod/t/master.m3u8')
})

t.test('prefill reads what it warmed from the store: memory, behind a Vary marker, streamed from disk', async (t) => {
  const r = await rig(t)
  r.hls.attach(r.view)
  r.hls.policyFor(r.warm)
  const segments = vodTitle(r, '/vod/t/', { master: 'vary', low: 'memory', high: 'disk' })
  const done = await prefill(r, { titles: ['/vod/t/'] })
  t.match(done, { state: 'done', playlists: 2, segmentsTotal: 8, segmentsFilled: 8, segmentsFailed: 0, errors: [] })
  t.same(r.warmed.filter((u) => !u.endsWith('.m3u8')).sort(), [...segments].sort(), 'every segment and init section of both renditions')
  t.equal(r.memory.peek('/vod/t/720p/index.m3u8'), undefined, 'the 720p playlist was only on disk')
  t.same(r.hls.index.master('/vod/t/master.m3u8')?.variants.map((v) => v.url), ['/vod/t/360p/index.m3u8', '/vod/t/720p/index.m3u8'], 'the index learnt the master')
  t.equal(r.hls.index.rendition('/vod/t/720p/index.m3u8')?.info.segments.length, 3, 'and each VOD rendition')
  t.equal(r.hls.index.titleOf('/vod/t/720p/seg-1.ts'), '/vod/t/')
})

t.test('afterwards the index answers for masters and VOD playlists; live playlists are read from the store again', async (t) => {
  const r = await rig(t)
  r.hls.attach(r.view)
  r.hls.policyFor(r.warm)
  vodTitle(r, '/vod/t/')
  t.match(await prefill(r, { titles: ['/vod/t/'] }), { state: 'done', segmentsFilled: 8 })
  // The playlists leave the store (evicted, purged): the index still knows the title.
  for (const key of ['/vod/t/master.m3u8', '/vod/t/360p/index.m3u8', '/vod/t/720p/index.m3u8']) {
    r.memory.delete(key)
    await r.disk.delete(key)
    r.origin.delete(key)
  }
  const again: string[] = []
  r.hls.policyFor(async (url) => { again.push(url); return { result: 'cached', bytes: 0 } })
  t.match(await prefill(r, { titles: ['/vod/t/'] }), { state: 'done', playlists: 2, segmentsTotal: 8, segmentsCached: 8, errors: [] }, 'a re-run walks the title from the index')
  t.equal(again.length, 3 + 8, 'three playlists and eight segments warmed')

  const live = '/live/c/index.m3u8'
  r.hls.policyFor(r.warm)
  r.origin.set(live, { body: media(['a-1.ts', 'a-2.ts'], { live: true, map: false }) })
  for (const s of ['a-1.ts', 'a-2.ts', 'a-3.ts', 'a-4.ts']) r.origin.set(`/live/c/${s}`, { body: s })
  t.match(await prefill(r, { titles: [live] }), { state: 'done', segmentsTotal: 2 })
  // The policy indexed the live playlist as it was served; since then a refresh replaced the stored one.
  const indexed = parsePlaylist(media(['a-1.ts', 'a-2.ts'], { live: true, map: false }), live)
  if (indexed?.kind !== 'media') throw new Error('fixture is not a media playlist')
  r.hls.index.recordMedia(live, normalizePlaylistUrls(indexed, (u) => r.hls.normalize(u)), T0)
  t.equal(r.hls.index.rendition(live)?.info.live, true)
  await place(r, live, Buffer.from(media(['a-3.ts', 'a-4.ts'], { live: true, map: false })), 'memory')
  const before = r.warmed.length
  t.match(await prefill(r, { titles: [live] }), { state: 'done', segmentsTotal: 2, segmentsFilled: 2 })
  t.same(r.warmed.slice(before).filter((u) => u.endsWith('.ts')).sort(), ['/live/c/a-3.ts', '/live/c/a-4.ts'], 'the current live window, not the indexed one')
})

t.test('what is not read as a playlist: too large to stream, damaged on disk, a stored error, no node attached', async (t) => {
  t.test('a streamed playlist larger than maxPlaylistBytes', async (t) => {
    const r = await rig(t, { policy: { maxPlaylistBytes: 100 } })
    r.hls.attach(r.view)
    r.hls.policyFor(r.warm)
    r.origin.set('/vod/big/index.m3u8', { body: media(['s-0.ts', 's-1.ts', 's-2.ts']), place: 'disk' })
    t.match(await prefill(r, { titles: ['/vod/big/index.m3u8'] }), { state: 'failed', errors: ['/vod/big/index.m3u8: not a playlist (or not cacheable)'] })
  })

  t.test('a damaged playlist file fails that title only; the job goes on with the next', async (t) => {
    const r = await rig(t)
    r.hls.attach(r.view)
    r.hls.policyFor(r.warm)
    const key = '/vod/bad/index.m3u8'
    const body = Buffer.from(media(['s-0.ts']))
    await place(r, key, body, 'disk')
    const path = join(r.dir, 'objects', objectRelativePath(hashKey(key)))
    await flipByte(path, (await open(path, 'r').then(async (fh) => { try { return (await fh.stat()).size } finally { await fh.close() } })) - 2)
    r.origin.set(key, { body })
    vodTitle(r, '/vod/good/')
    const done = await prefill(r, { titles: [key, '/vod/good/'] })
    t.match(done, { state: 'done', segmentsFilled: 8 }, 'the good title was filled')
    t.same(done.errors, [`${key}: not a playlist (or not cacheable)`])
    t.equal(r.disk.has(key), false, 'the damaged file was dropped by the store')
  })

  t.test('a stored error response', async (t) => {
    const r = await rig(t)
    r.hls.attach(r.view)
    r.hls.policyFor(async (url) => { r.warmed.push(url); return { result: 'cached', bytes: 0 } })
    await place(r, '/vod/gone/master.m3u8', Buffer.from('not found\n'), 'memory', 404)
    t.match(await prefill(r, { titles: ['/vod/gone/'] }), { state: 'failed', errors: ['/vod/gone/master.m3u8: not a playlist (or not cacheable)'] })
  })

  t.test('a body that is not a playlist', async (t) => {
    const r = await rig(t)
    r.hls.attach(r.view)
    r.hls.policyFor(r.warm)
    r.origin.set('/vod/html/master.m3u8', { body: '<html>login</html>' })
    t.match(await prefill(r, { titles: ['/vod/html/'] }), { state: 'failed', errors: ['/vod/html/master.m3u8: not a playlist (or not cacheable)'] })
  })

  t.test('no node attached yet', async (t) => {
    const r = await rig(t)
    r.hls.policyFor(r.warm)
    vodTitle(r, '/vod/t/')
    t.match(await prefill(r, { titles: ['/vod/t/'] }), { state: 'failed', errors: ['/vod/t/master.m3u8: not a playlist (or not cacheable)'] })
  })
})

t.test('the prefill admin route: list, start, get, cancel; 400 for bad bodies, 404 for unknown ids, 405 with Allow', async (t) => {
  const r = await rig(t)
  r.hls.attach(r.view)
  let release: (() => void) | undefined
  const stalled = new Promise<void>((resolve) => { release = resolve })
  t.teardown(() => release?.())
  // A warm that never finishes on its own: the job stays running until it is cancelled.
  r.hls.policyFor(async (url, { signal }) => {
    await Promise.race([stalled, new Promise((resolve) => signal?.addEventListener('abort', resolve))])
    return { result: 'failed', bytes: 0 } satisfies WarmOutcome
  })
  t.same(await route(r, 'prefill', 'GET'), { status: 200, body: { jobs: [] } })
  t.match(await route(r, 'prefill', 'POST', '', { titles: ['vod'] }), { status: 400, body: { error: /titles/ } })
  t.match(await route(r, 'prefill', 'POST', '', undefined), { status: 400, body: { error: /./ } }, 'no JSON body')
  t.match(await route(r, 'prefill', 'PUT'), { status: 405, allow: 'GET, POST' })
  const started = await route(r, 'prefill', 'POST', '/', { titles: ['/vod/slow/'] })
  t.match(started, { status: 202, body: { id: /^pf-/, titles: ['/vod/slow/'] } }, "'/' is the collection too")
  const id = (started.body as PrefillJobStatus).id
  t.match(await route(r, 'prefill', 'GET', `/${id}`), { status: 200, body: { id, state: /waiting|running/ } })
  t.match(await route(r, 'prefill', 'GET', `/${encodeURIComponent(id)}`), { status: 200, body: { id } })
  t.match(await route(r, 'prefill', 'GET'), { status: 200, body: { jobs: [{ id }] } })
  t.match(await route(r, 'prefill', 'POST', `/${id}`), { status: 405, allow: 'GET, DELETE' })
  t.match(await route(r, 'prefill', 'DELETE', `/${id}`), { status: 200, body: { id, state: 'cancelled' } })
  t.match(await route(r, 'prefill', 'GET', `/${id}`), { status: 200, body: { state: 'cancelled' } })
  t.same(await route(r, 'prefill', 'GET', '/pf-nope'), { status: 404, body: { error: 'no prefill job pf-nope' } })
  t.same(await route(r, 'prefill', 'DELETE', '/pf-nope'), { status: 404, body: { error: 'no prefill job pf-nope' } })
  t.same(await route(r, 'prefill', 'GET', '/%E0%A4%A'), { status: 404, body: { error: 'no prefill job %E0%A4%A' } }, 'a malformed id is an unknown job, not a server error')
  t.same(await route(r, 'inventory', 'POST'), { status: 405, body: { error: 'use GET' }, allow: 'GET' })
})

t.test('the inventory: segments in memory, on disk and being written, each once, under the master\'s title', async (t) => {
  const r = await rig(t, { now: () => T0 + 5 })
  r.hls.attach(r.view)
  r.hls.policyFor(r.warm)
  vodTitle(r, '/vod/t/', { high: 'disk' })
  await prefill(r, { titles: ['/vod/t/'] })
  // Segments stored outside prefill: one title the node never saw a master for, one on disk only, one write in flight.
  r.memory.put(object('/vod/other/720p/seg-1.ts', Buffer.from('x')))
  await r.disk.put(object('/vod/other/720p/seg-2.ts', Buffer.from('y')))
  const writing = r.disk.put(object('/vod/other/720p/seg-3.ts', Buffer.from('z')))
  r.memory.put(object('/vod/other/master-less.m3u8', Buffer.from(media(['seg-1.ts']))))
  t.same([...r.disk.pendingKeys()], ['/vod/other/720p/seg-3.ts'], 'one write in flight')
  const answer = await route(r, 'inventory', 'GET')
  await writing
  t.same(answer, {
    status: 200,
    body: {
      v: 1,
      node: 'edge-rt',
      generatedAtMs: T0 + 5,
      titles: [{ title: '/vod/t/', segments: 8 }, { title: '/vod/other/', segments: 3 }],
    },
  })
  t.same(r.hls.inventory(), (answer.body as object), 'inventory() is what the route answers')
})

t.test('gauges follow the index and the prefill jobs', async (t) => {
  const r = await rig(t)
  r.hls.attach(r.view)
  r.hls.policyFor(r.warm)
  vodTitle(r, '/vod/t/')
  await prefill(r, { titles: ['/vod/t/'] })
  const text = await r.hls.metrics.render()
  t.match(text, /^streamedge_hls_index_renditions 2$/m)
  t.match(text, /^streamedge_hls_index_segments 8$/m, 'six segments and two init sections')
  t.match(text, /^streamedge_hls_prefill_jobs\{state="done"\} 1$/m)
  t.match(text, /^streamedge_hls_prefill_remaining_segments 0$/m)
  t.match(text, /^streamedge_hls_prefill_segments_total\{outcome="filled"\} 8$/m)
})

t.test('policyFor again replaces prefetcher and prefiller (old jobs cancelled); close cancels and aborts the warms', async (t) => {
  const r = await rig(t)
  r.hls.attach(r.view)
  const aborted: string[] = []
  const started: string[] = []
  const hanging: Warm = async (url, { signal }) => {
    started.push(url)
    await new Promise<void>((resolve) => signal?.addEventListener('abort', () => { aborted.push(url); resolve() }))
    return { result: 'failed', bytes: 0 }
  }
  r.hls.policyFor(hanging)
  const first = r.hls.prefiller!
  const firstPrefetcher = r.hls.prefetcher
  const job = first.start({ titles: ['/vod/a/'] })
  r.hls.policyFor(hanging)
  t.not(r.hls.prefiller, first, 'a new prefiller')
  t.not(r.hls.prefetcher, firstPrefetcher, 'a new prefetcher')
  t.equal(first.get(job.id)?.state, 'cancelled', 'the old prefiller\'s job was cancelled')
  t.same(r.hls.prefiller!.list(), [])
  const second = r.hls.prefiller!.start({ titles: ['/vod/b/'] })
  for (let i = 0; i < 2000 && !started.includes('/vod/b/master.m3u8'); i++) await new Promise((resolve) => setTimeout(resolve, 1))
  t.equal(r.hls.prefiller!.get(second.id)?.state, 'running')
  await r.hls.close()
  t.equal(r.hls.prefiller!.get(second.id)?.state, 'cancelled')
  t.ok(aborted.includes('/vod/b/master.m3u8'), 'the warm in flight saw the abort')
  t.throws(() => r.hls.prefiller!.start({ titles: ['/vod/c/'] }), /closed/, 'a closed runtime takes no new jobs')
})
