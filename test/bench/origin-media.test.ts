import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { containsFourCc, inspectTransportStream, listBoxes } from '../helpers/origin-media.ts'
import { originRequest, startTestOrigin } from '../helpers/origin-fixture.ts'

const run = promisify(execFile)
const MEDIA = fileURLToPath(new URL('../../bench/origin/media/', import.meta.url))
const TITLES = { 'bbb-test': 'ts', bars: 'm4s' } as const
const RENDITIONS = ['360p', '180p'] as const
const H264 = 0x1b
const AAC_ADTS = 0x0f

async function hasTool (name: string): Promise<boolean> {
  try {
    await run(name, ['-version'])
    return true
  } catch {
    return false
  }
}

async function treeBytes (dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath, entry.name))).size
  }
  return total
}

t.test('committed playlists: two titles, two VOD renditions each, 4 s segments', async (t) => {
  for (const [title, ext] of Object.entries(TITLES)) {
    const master = await readFile(`${MEDIA}vod/${title}/master.m3u8`, 'utf8')
    t.match(master, /^#EXTM3U\n/)
    t.equal(master.match(/#EXT-X-STREAM-INF:.*BANDWIDTH=\d+.*RESOLUTION=\d+x\d+.*CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"/g)?.length, 2, `${title} has two variants with codecs`)
    for (const rendition of RENDITIONS) {
      const playlist = await readFile(`${MEDIA}vod/${title}/${rendition}/index.m3u8`, 'utf8')
      t.match(playlist, /#EXT-X-PLAYLIST-TYPE:VOD\n/)
      t.match(playlist, /#EXT-X-TARGETDURATION:4\n/)
      t.match(playlist, /#EXT-X-ENDLIST\n?$/)
      const durations = [...playlist.matchAll(/#EXTINF:([\d.]+),/g)].map((m) => Number(m[1]))
      t.equal(durations.length, 6, `${title}/${rendition} has 6 segments`)
      t.equal(Math.round(durations.reduce((a, b) => a + b, 0)), 24, 'about 24 s long')
      t.equal(playlist.match(new RegExp(`^seg-\\d+\\.${ext}$`, 'gm'))?.length, 6)
      if (ext === 'm4s') t.match(playlist, /#EXT-X-MAP:URI="init\.mp4"/)
    }
  }
  const bytes = await treeBytes(`${MEDIA}vod`)
  t.ok(bytes < 6 * 1024 * 1024, `committed media is ${(bytes / 1048576).toFixed(2)} MiB, under 6 MiB`)
})

t.test('committed TS segments: sync bytes, PAT and PMT with H.264 + AAC', async (t) => {
  for (const rendition of RENDITIONS) {
    for (let i = 0; i < 6; i++) {
      const body = await readFile(`${MEDIA}vod/bbb-test/${rendition}/seg-${i}.ts`)
      const info = inspectTransportStream(body)
      const name = `${rendition}/seg-${i}.ts`
      t.equal(body.length % 188, 0, `${name} is whole packets`)
      t.same(info.badSyncOffsets, [], `${name} sync bytes`)
      t.ok(info.hasPat, `${name} has a PAT`)
      t.same([...info.streamTypes].sort(), [AAC_ADTS, H264], `${name} PMT lists H.264 and AAC`)
    }
  }
})

t.test('committed fMP4: init has ftyp+moov with avc1/mp4a, segments are moof+mdat', async (t) => {
  for (const rendition of RENDITIONS) {
    const init = await readFile(`${MEDIA}vod/bars/${rendition}/init.mp4`)
    const boxes = listBoxes(init).map((b) => b.type)
    t.same(boxes.slice(0, 2), ['ftyp', 'moov'], `${rendition} init starts ftyp, moov`)
    const moov = listBoxes(init).find((b) => b.type === 'moov')
    const moovBody = init.subarray((moov?.offset ?? 0) + 8, (moov?.offset ?? 0) + (moov?.size ?? 0))
    t.ok(listBoxes(moovBody).some((b) => b.type === 'mvex'), 'moov has mvex (fragmented)')
    t.ok(containsFourCc(moovBody, 'avc1') && containsFourCc(moovBody, 'mp4a'), 'sample entries avc1 and mp4a')
    for (let i = 0; i < 6; i++) {
      const types = listBoxes(await readFile(`${MEDIA}vod/bars/${rendition}/seg-${i}.m4s`)).map((b) => b.type)
      t.ok(types.includes('moof') && types.includes('mdat'), `${rendition}/seg-${i}.m4s has moof and mdat`)
    }
  }
})

// ffprobe is installed by .ci/run; where it is not, the structural tests above still ran.
t.test('committed segments decode as H.264 + AAC-LC (ffprobe when installed)', async (t) => {
  if (!(await hasTool('ffprobe'))) {
    const info = inspectTransportStream(await readFile(`${MEDIA}vod/bbb-test/360p/seg-0.ts`))
    t.same([...info.streamTypes].sort(), [AAC_ADTS, H264], 'no ffprobe: the PMT declares H.264 and AAC')
    return
  }
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-origin-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const fmp4 = join(dir, 'bars-180p-seg-3.mp4')
  await writeFile(fmp4, Buffer.concat([await readFile(`${MEDIA}vod/bars/180p/init.mp4`), await readFile(`${MEDIA}vod/bars/180p/seg-3.m4s`)]))
  for (const file of [`${MEDIA}vod/bbb-test/360p/seg-0.ts`, `${MEDIA}vod/bbb-test/180p/seg-5.ts`, fmp4]) {
    const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,profile,sample_rate', '-of', 'json', file])
    const streams = (JSON.parse(stdout) as { streams: Array<{ codec_name: string, profile: string, sample_rate?: string }> }).streams
    t.ok(streams.some((s) => s.codec_name === 'h264'), `${file} has H.264`)
    t.ok(streams.some((s) => s.codec_name === 'aac' && s.profile === 'LC' && s.sample_rate === '48000'), `${file} has AAC-LC 48 kHz`)
  }
})

t.test('every playlist URI resolves through the origin (and ffmpeg plays it when installed)', async (t) => {
  const origin = await startTestOrigin(t)
  for (const title of Object.keys(TITLES)) {
    const master = (await originRequest(`${origin.url}/vod/${title}/master.m3u8`)).body.toString()
    for (const variant of master.split('\n').filter((l) => l.endsWith('.m3u8'))) {
      const base = `${origin.url}/vod/${title}/${variant.replace(/index\.m3u8$/, '')}`
      const playlist = (await originRequest(base + 'index.m3u8')).body.toString()
      const uris = [...playlist.matchAll(/URI="([^"]+)"/g)].map((m) => m[1] ?? '').concat(playlist.split('\n').filter((l) => l !== '' && !l.startsWith('#')))
      for (const uri of uris) t.equal((await originRequest(base + uri, { method: 'HEAD' })).status, 200, `${title}/${variant} → ${uri}`)
    }
  }
  if (!(await hasTool('ffmpeg'))) return
  for (const title of Object.keys(TITLES)) {
    const { stderr } = await run('ffmpeg', ['-hide_banner', '-nostdin', '-loglevel', 'error', '-i', `${origin.url}/vod/${title}/master.m3u8`, '-map', '0', '-f', 'null', '-'])
    t.equal(stderr.trim(), '', `ffmpeg decoded ${title} through the origin without errors`)
  }
})
