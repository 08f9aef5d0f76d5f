/**
 * A VOD title for the hot-playlist scenario: a real media playlist of about 1.5 KiB (a
 * few dozen segments), which the committed demo titles (6 segments, ~300 bytes) are too
 * short for. Written into a temp media dir that the demo origin serves (`mediaDir`).
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** The written title. */
export interface PlaylistTitle {
  /** URL path of the media playlist (`/vod/<name>/v/index.m3u8`). */
  readonly playlistPath: string
  readonly playlistBytes: number
  readonly segments: number
}

/** A VOD media playlist listing `segments` 4-second TS segments (RFC 8216 §4.3). */
export function mediaPlaylist (segments: number): string {
  const lines = ['#EXTM3U', '#EXT-X-VERSION:3', '#EXT-X-TARGETDURATION:4', '#EXT-X-MEDIA-SEQUENCE:0', '#EXT-X-PLAYLIST-TYPE:VOD']
  for (let i = 0; i < segments; i++) lines.push('#EXTINF:4.000000,', `segment-${String(i).padStart(5, '0')}.ts`)
  lines.push('#EXT-X-ENDLIST')
  return `${lines.join('\n')}\n`
}

/** The fewest segments whose playlist is at least `targetBytes` long. */
export function segmentsForPlaylistBytes (targetBytes: number): number {
  let n = 1
  while (Buffer.byteLength(mediaPlaylist(n)) < targetBytes) n++
  return n
}

/**
 * Writes `vod/<name>/master.m3u8`, `vod/<name>/v/index.m3u8` of about `targetBytes`, and
 * its (tiny, valid MPEG-TS) segments under `mediaDir`.
 */
export async function writePlaylistTitle (mediaDir: string, name: string, targetBytes: number): Promise<PlaylistTitle> {
  const segments = segmentsForPlaylistBytes(targetBytes)
  const dir = join(mediaDir, 'vod', name, 'v')
  await mkdir(dir, { recursive: true })
  const master = '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nv/index.m3u8\n'
  await writeFile(join(mediaDir, 'vod', name, 'master.m3u8'), master)
  const playlist = mediaPlaylist(segments)
  await writeFile(join(dir, 'index.m3u8'), playlist)
  // Two null packets (PID 0x1FFF): the origin's library only checks that listed segments exist.
  const packet = Buffer.alloc(188, 0xff)
  packet.set([0x47, 0x1f, 0xff, 0x10])
  const segment = Buffer.concat([packet, packet])
  for (let i = 0; i < segments; i++) await writeFile(join(dir, `segment-${String(i).padStart(5, '0')}.ts`), segment)
  return { playlistPath: `/vod/${name}/v/index.m3u8`, playlistBytes: Buffer.byteLength(playlist), segments }
}
