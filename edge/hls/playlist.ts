/**
 * HLS playlists as the cache needs them (the only hls-parser import): a multivariant
 * playlist's variant and rendition URIs, a media playlist's target duration, media
 * sequence, segments, partial segments and preload hints, with every URI resolved to a
 * path on this host. Anything the parser rejects is `undefined`: the cache then treats
 * the body as opaque and applies no HLS rule to it.
 * @see RFC 8216 §4.3 (playlist tags), draft-pantos-hls-rfc8216bis §4.4.4.9 (EXT-X-PART), §4.4.5.3 (EXT-X-PRELOAD-HINT)
 */
import { parse, setOptions } from 'hls-parser'
import type { MasterPlaylist, MediaPlaylist, Variant } from 'hls-parser/types.js'

// Non-strict parsing logs every tolerated flaw to the console; the cache must stay quiet.
setOptions({ silent: true })

/** A media segment (or init section) with its media sequence number. */
export interface SegmentRef {
  /** Path and query on this host. */
  readonly url: string
  readonly msn: number
  readonly durationSec: number
}

/** A partial segment or a preload hint (LL-HLS). */
export interface PartRef {
  readonly url: string
  /** Media sequence number of the parent segment. */
  readonly msn: number
  /** Index of the part within its parent segment. */
  readonly index: number
  /** EXT-X-PRELOAD-HINT: announced, not yet published. */
  readonly hint: boolean
}

/** A media playlist, summarised. */
export interface MediaPlaylistInfo {
  readonly kind: 'media'
  readonly targetDurationSec: number
  /** EXT-X-MEDIA-SEQUENCE (RFC 8216 §4.3.3.2); a delta update's skipped segments included. */
  readonly mediaSequence: number
  /** No EXT-X-ENDLIST: the playlist still changes (a sliding live window or a growing EVENT). */
  readonly live: boolean
  readonly playlistType: 'VOD' | 'EVENT' | undefined
  /** Complete segments, in order. */
  readonly segments: readonly SegmentRef[]
  /** EXT-X-MAP URIs, distinct, in order of appearance. */
  readonly maps: readonly string[]
  /** Partial segments and preload hints still listed. */
  readonly parts: readonly PartRef[]
  readonly partTargetSec: number | undefined
  /** EXT-X-SERVER-CONTROL CAN-BLOCK-RELOAD=YES. */
  readonly canBlockReload: boolean
  /** Segments left out of a delta update (EXT-X-SKIP); their URIs are unknown here. */
  readonly skippedSegments: number
  /**
   * The newest published position: the last media sequence number and, when that segment
   * is still being built from parts, how many of its parts exist (undefined: complete).
   */
  readonly lastMsn: number
  readonly lastPartCount: number | undefined
}

/** One variant stream of a multivariant playlist. */
export interface VariantRef {
  readonly url: string
  readonly bandwidth: number
  /** EXT-X-I-FRAME-STREAM-INF. */
  readonly iframe: boolean
  /** EXT-X-MEDIA renditions (audio, subtitles, alternative video) of the variant's groups. */
  readonly media: readonly string[]
}

/** A multivariant (master) playlist, summarised. */
export interface MasterPlaylistInfo {
  readonly kind: 'master'
  readonly variants: readonly VariantRef[]
}

export type PlaylistInfo = MasterPlaylistInfo | MediaPlaylistInfo

/**
 * Parses a playlist body fetched from `url` (path and query on this host). Undefined
 * when the body is not a playlist the parser accepts.
 */
export function parsePlaylist (text: string, url: string): PlaylistInfo | undefined {
  if (!text.startsWith('#EXTM3U') && !text.startsWith('\uFEFF#EXTM3U')) return undefined
  let parsed: MasterPlaylist | MediaPlaylist
  try {
    parsed = parse(text.replace(/^\uFEFF/, ''))
  } catch {
    return undefined
  }
  if (parsed.isMasterPlaylist) return masterInfo(parsed, url)
  // EXT-X-TARGETDURATION is required (RFC 8216 §4.3.3.1); every lifetime rule hangs on it.
  return parsed.targetDuration > 0 ? mediaInfo(parsed, url) : undefined
}

function masterInfo (playlist: MasterPlaylist, base: string): MasterPlaylistInfo {
  const variants: VariantRef[] = []
  for (const variant of playlist.variants) {
    const url = resolveUri(variant.uri, base)
    if (url === undefined) continue
    variants.push({ url, bandwidth: variant.bandwidth, iframe: variant.isIFrameOnly === true, media: mediaUris(variant, base) })
  }
  return { kind: 'master', variants }
}

function mediaUris (variant: Variant, base: string): string[] {
  const out = new Set<string>()
  for (const rendition of [...variant.audio, ...variant.video, ...variant.subtitles]) {
    const url = rendition.uri === undefined ? undefined : resolveUri(rendition.uri, base)
    if (url !== undefined) out.add(url)
  }
  return [...out]
}

function mediaInfo (playlist: MediaPlaylist, base: string): MediaPlaylistInfo {
  const segments: SegmentRef[] = []
  const parts: PartRef[] = []
  const maps = new Set<string>()
  let lastMsn = (playlist.mediaSequenceBase ?? 0) - 1
  let lastPartCount: number | undefined
  for (const segment of playlist.segments) {
    const map = segment.map?.uri === undefined ? undefined : resolveUri(segment.map.uri, base)
    if (map !== undefined) maps.add(map)
    segment.parts.forEach((part, index) => {
      const url = resolveUri(part.uri, base)
      if (url !== undefined) parts.push({ url, msn: segment.mediaSequenceNumber, index, hint: part.hint })
    })
    lastMsn = segment.mediaSequenceNumber
    if (segment.uri === '') {
      // The segment being built: only its parts exist so far.
      lastPartCount = segment.parts.filter((p) => !p.hint).length
      continue
    }
    lastPartCount = undefined
    const url = resolveUri(segment.uri, base)
    if (url !== undefined) segments.push({ url, msn: segment.mediaSequenceNumber, durationSec: segment.duration })
  }
  return {
    kind: 'media',
    targetDurationSec: playlist.targetDuration,
    mediaSequence: playlist.mediaSequenceBase ?? 0,
    live: !playlist.endlist && playlist.playlistType !== 'VOD',
    playlistType: playlist.playlistType,
    segments,
    maps: [...maps],
    parts,
    partTargetSec: playlist.partTargetDuration,
    canBlockReload: playlist.lowLatencyCompatibility?.canBlockReload === true,
    skippedSegments: playlist.skip,
    lastMsn,
    lastPartCount,
  }
}

/**
 * The summary with every URI passed through `normalize` (the cache-key form), so index
 * lookups match the URLs clients are served under. A URI `normalize` rejects stays as is.
 */
export function normalizePlaylistUrls<T extends PlaylistInfo> (info: T, normalize: (url: string) => string): T {
  const n = (url: string): string => {
    try {
      return normalize(url)
    } catch {
      return url
    }
  }
  if (info.kind === 'master') {
    return { ...info, variants: info.variants.map((v) => ({ ...v, url: n(v.url), media: v.media.map(n) })) }
  }
  return {
    ...info,
    segments: info.segments.map((s) => ({ ...s, url: n(s.url) })),
    maps: info.maps.map(n),
    parts: info.parts.map((p) => ({ ...p, url: n(p.url) })),
  }
}

const BASE_ORIGIN = 'http://streamedge.invalid'

/**
 * A URI from a playlist as a path and query on this host (RFC 3986 §5.2 resolution
 * against the playlist's URL). URIs naming another host or scheme, and data: URIs, are
 * not ours to cache: undefined.
 */
export function resolveUri (uri: string, base: string): string | undefined {
  // The parser hands over whatever sat on the URI line; anything but a string is not a URI.
  if (typeof uri !== 'string' || uri === '') return undefined
  let resolved: URL
  try {
    resolved = new URL(uri, BASE_ORIGIN + base)
  } catch {
    return undefined
  }
  if (resolved.origin !== BASE_ORIGIN) return undefined
  return resolved.pathname + resolved.search
}
