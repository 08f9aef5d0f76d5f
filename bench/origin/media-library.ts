import { readdir, readFile, stat } from 'node:fs/promises'
import { join, posix, relative, sep } from 'node:path'
import { CdnError } from '../../lib/errors.ts'
import { contentTypeFor, IMMUTABLE_CACHE_CONTROL, makeStaticObject, type OriginObject } from './origin-object.ts'

/** Cache-Control for VOD playlists: they never change, but a shorter life lets a re-encode roll out. */
export const VOD_PLAYLIST_CACHE_CONTROL = 'public, max-age=300'

/** One media segment of a rendition, in playlist order. */
export interface MediaSegment {
  readonly uri: string
  readonly durationSec: number
  readonly object: OriginObject
}

/** One variant stream of a title (a media playlist and its segments). */
export interface Rendition {
  /** Directory of the media playlist inside the title, e.g. `360p`. */
  readonly name: string
  readonly version: number
  readonly targetDurationSec: number
  /** EXT-X-MAP URI (fMP4 init segment), relative to the media playlist. */
  readonly mapUri?: string
  readonly mapObject?: OriginObject
  /** Extension of the media segments without the dot (`ts`, `m4s`). */
  readonly segmentExt: string
  readonly segments: readonly MediaSegment[]
}

/** A VOD title: `vod/<name>/master.m3u8` and the renditions it lists, in master order. */
export interface Title {
  readonly name: string
  readonly master: OriginObject
  readonly renditions: readonly Rendition[]
}

/** Everything under `<mediaDir>/vod/`, in memory, keyed by URL path (`/vod/...`). */
export interface MediaLibrary {
  readonly objects: ReadonlyMap<string, OriginObject>
  readonly titles: ReadonlyMap<string, Title>
}

/** Reads every file under `<mediaDir>/vod/` once and parses the titles' playlists. */
export async function loadMediaLibrary (mediaDir: string): Promise<MediaLibrary> {
  const vodDir = join(mediaDir, 'vod')
  const files = await listFiles(vodDir).catch((err: unknown) => {
    throw new CdnError('CDN_ERR_CONFIG_INVALID', `Cannot read media directory ${vodDir}`, { cause: err })
  })
  const objects = new Map<string, OriginObject>()
  for (const file of files) {
    const urlPath = '/vod/' + relative(vodDir, file).split(sep).join('/')
    const [body, info] = await Promise.all([readFile(file), stat(file)])
    objects.set(urlPath, makeStaticObject(body, {
      contentType: contentTypeFor(file),
      cacheControl: file.endsWith('.m3u8') ? VOD_PLAYLIST_CACHE_CONTROL : IMMUTABLE_CACHE_CONTROL,
      lastModifiedMs: info.mtimeMs,
    }))
  }
  const titles = new Map<string, Title>()
  for (const [path, master] of objects) {
    const match = /^\/vod\/([^/]+)\/master\.m3u8$/.exec(path)
    if (match?.[1] !== undefined) titles.set(match[1], parseTitle(match[1], master, objects))
  }
  if (titles.size === 0) throw new CdnError('CDN_ERR_CONFIG_INVALID', `No vod/<title>/master.m3u8 under ${mediaDir}`)
  return { objects, titles }
}

async function listFiles (dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true })
  const nested = await Promise.all(entries
    .filter((entry) => !entry.name.startsWith('.'))
    .map(async (entry) => {
      const full = join(dir, entry.name)
      if (entry.isDirectory()) return listFiles(full)
      return entry.isFile() ? [full] : []
    }))
  return nested.flat()
}

function parseTitle (name: string, master: OriginObject, objects: ReadonlyMap<string, OriginObject>): Title {
  const base = `/vod/${name}/`
  const renditions = variantUris(master.body().toString('utf8')).map((uri) => {
    const playlistPath = posix.normalize(base + uri)
    const playlist = objects.get(playlistPath)
    if (playlist === undefined) throw new CdnError('CDN_ERR_CONFIG_INVALID', `${base}master.m3u8 lists missing ${uri}`)
    return parseRendition(posix.dirname(uri), playlistPath, playlist, objects)
  })
  if (renditions.length === 0) throw new CdnError('CDN_ERR_CONFIG_INVALID', `${base}master.m3u8 lists no variant streams`)
  return { name, master, renditions }
}

/** URIs that follow EXT-X-STREAM-INF tags (RFC 8216 §4.3.4.2). */
function variantUris (text: string): string[] {
  const uris: string[] = []
  let expectUri = false
  for (const line of text.split(/\r?\n/).map((l) => l.trim())) {
    if (line.startsWith('#EXT-X-STREAM-INF:')) expectUri = true
    else if (expectUri && line !== '' && !line.startsWith('#')) {
      uris.push(line)
      expectUri = false
    }
  }
  return uris
}

function parseRendition (name: string, playlistPath: string, playlist: OriginObject, objects: ReadonlyMap<string, OriginObject>): Rendition {
  const dir = posix.dirname(playlistPath)
  const resolve = (uri: string): OriginObject => {
    const object = objects.get(posix.normalize(`${dir}/${uri}`))
    if (object === undefined) throw new CdnError('CDN_ERR_CONFIG_INVALID', `${playlistPath} lists missing ${uri}`)
    return object
  }
  let version = 3
  let targetDurationSec = 0
  let mapUri: string | undefined
  let pendingDurationSec: number | undefined
  const segments: MediaSegment[] = []
  for (const line of playlist.body().toString('utf8').split(/\r?\n/).map((l) => l.trim())) {
    if (line.startsWith('#EXT-X-VERSION:')) version = Number(line.slice(15))
    else if (line.startsWith('#EXT-X-TARGETDURATION:')) targetDurationSec = Number(line.slice(22))
    else if (line.startsWith('#EXT-X-MAP:')) mapUri = /URI="([^"]+)"/.exec(line)?.[1]
    else if (line.startsWith('#EXTINF:')) pendingDurationSec = Number.parseFloat(line.slice(8))
    else if (line !== '' && !line.startsWith('#') && pendingDurationSec !== undefined) {
      segments.push({ uri: line, durationSec: pendingDurationSec, object: resolve(line) })
      pendingDurationSec = undefined
    }
  }
  if (!(targetDurationSec > 0) || segments.length === 0) {
    throw new CdnError('CDN_ERR_CONFIG_INVALID', `${playlistPath} has no EXT-X-TARGETDURATION or no segments`)
  }
  const segmentExt = posix.extname(segments[0]?.uri ?? '').slice(1)
  const rendition: Rendition = { name, version, targetDurationSec, segmentExt, segments }
  return mapUri === undefined ? rendition : { ...rendition, mapUri, mapObject: resolve(mapUri) }
}
