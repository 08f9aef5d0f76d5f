/**
 * Telling HLS playlists and media apart by URL extension and Content-Type (pure). The
 * extension wins when it is known: origins often label playlists `text/plain` or
 * segments `application/octet-stream`.
 * @see RFC 8216 §4 (playlist file names and media types), §3 (media segment formats)
 */

/** What an HLS URL holds. */
export type MediaKind = 'playlist' | 'segment' | 'other'

const PLAYLIST_EXTENSIONS: ReadonlySet<string> = new Set(['m3u8', 'm3u'])
/** MPEG-TS, fMP4/CMAF, packed audio, WebVTT, and init sections. */
const SEGMENT_EXTENSIONS: ReadonlySet<string> = new Set([
  'ts', 'm4s', 'mp4', 'm4v', 'm4a', 'cmfv', 'cmfa', 'cmft', 'aac', 'ac3', 'ec3', 'mp3', 'vtt', 'webvtt',
])
const PLAYLIST_TYPES: ReadonlySet<string> = new Set(['application/vnd.apple.mpegurl', 'application/x-mpegurl', 'audio/mpegurl', 'audio/x-mpegurl'])
const SEGMENT_TYPES: ReadonlySet<string> = new Set([
  'video/mp2t', 'video/iso.segment', 'video/mp4', 'audio/mp4', 'audio/aac', 'audio/ac3', 'audio/eac3', 'audio/mpeg', 'text/vtt', 'application/mp4',
])

/** Classifies a URL (path and query) with an optional Content-Type. */
export function mediaKindOf (url: string, contentType?: string): MediaKind {
  const ext = extensionOf(url)
  if (PLAYLIST_EXTENSIONS.has(ext)) return 'playlist'
  if (SEGMENT_EXTENSIONS.has(ext)) return 'segment'
  if (contentType === undefined) return 'other'
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase()
  if (PLAYLIST_TYPES.has(type)) return 'playlist'
  if (SEGMENT_TYPES.has(type)) return 'segment'
  return 'other'
}

/** A playlist by its URL's extension alone (what a body rewrite or a redirect decides on before any response exists). */
export function isPlaylistUrl (url: string): boolean {
  return PLAYLIST_EXTENSIONS.has(extensionOf(url))
}

/** Lower-case extension of the URL's last path segment, without the dot ('' when none). */
export function extensionOf (url: string): string {
  const end = queryStart(url)
  const slash = url.lastIndexOf('/', end - 1)
  const dot = url.lastIndexOf('.', end - 1)
  return dot > slash ? url.slice(dot + 1, end).toLowerCase() : ''
}

/** The URL without its query. */
export function pathOf (url: string): string {
  return url.slice(0, queryStart(url))
}

/** The directory of a URL's path, with its trailing slash (`/a/b/c.ts` → `/a/b/`). */
export function directoryOf (url: string): string {
  const path = pathOf(url)
  return path.slice(0, path.lastIndexOf('/') + 1)
}

function queryStart (url: string): number {
  const q = url.indexOf('?')
  return q < 0 ? url.length : q
}
