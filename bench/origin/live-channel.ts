import { contentTypeFor, IMMUTABLE_CACHE_CONTROL, makeStaticObject, type OriginObject } from './origin-object.ts'
import type { Rendition, Title } from './media-library.ts'

/** Default number of segments in a live media playlist. */
export const DEFAULT_LIVE_WINDOW_SEGMENTS = 6

/** Options of a {@link LiveChannel}. */
export interface LiveChannelOptions {
  readonly title: Title
  readonly windowSegments: number
  /** Wall-clock time the channel started; media sequence 0 is the first window. */
  readonly startMs: number
  readonly now: () => number
}

/** Answer for a path under `/live/<stream>/`. */
export type LiveLookup =
  | { readonly kind: 'object', readonly object: OriginObject }
  | { readonly kind: 'not-published' }
  | { readonly kind: 'not-found' }

const SEGMENT_NAME = /^seg-(\d{1,15})\.([A-Za-z0-9]+)$/

/**
 * A live stream made by looping one VOD title. Every target duration the window slides
 * by one segment: EXT-X-MEDIA-SEQUENCE = floor((now - startMs) / targetDuration), the
 * playlist lists that many `windowSegments`, and segment `seg-<msn>` is VOD segment
 * `msn % count`, with EXT-X-DISCONTINUITY where the loop wraps.
 * @see RFC 8216 §6.2.2 (live playlists), §4.3.3.3 (EXT-X-DISCONTINUITY-SEQUENCE)
 */
export class LiveChannel {
  readonly #title: Title
  readonly #windowSegments: number
  readonly #startMs: number
  readonly #now: () => number
  readonly #segmentMs: number
  readonly #loopSegments: number
  readonly #playlistCache = new Map<string, { mediaSequence: number, object: OriginObject }>()

  constructor (options: LiveChannelOptions) {
    this.#title = options.title
    this.#windowSegments = options.windowSegments
    this.#startMs = options.startMs
    this.#now = options.now
    this.#segmentMs = Math.max(...options.title.renditions.map((r) => r.targetDurationSec)) * 1000
    // Renditions are cut on the same keyframes, but guard against one being a segment short.
    this.#loopSegments = Math.min(...options.title.renditions.map((r) => r.segments.length))
  }

  /** EXT-X-MEDIA-SEQUENCE of the current window. */
  mediaSequence (): number {
    return Math.max(0, Math.floor((this.#now() - this.#startMs) / this.#segmentMs))
  }

  /** Highest media sequence number published so far. */
  liveEdge (): number {
    return this.mediaSequence() + this.#windowSegments - 1
  }

  /** Resolves `rest`, the path below `/live/<stream>/`. */
  lookup (rest: string): LiveLookup {
    if (rest === 'master.m3u8') return { kind: 'object', object: this.#master() }
    const top = this.#title.renditions[0]
    if (rest === 'index.m3u8' && top !== undefined) return { kind: 'object', object: this.#playlist(top, `${top.name}/`) }
    const slash = rest.indexOf('/')
    const rendition = this.#title.renditions.find((r) => r.name === rest.slice(0, slash))
    if (slash < 0 || rendition === undefined) return { kind: 'not-found' }
    const file = rest.slice(slash + 1)
    if (file === 'index.m3u8') return { kind: 'object', object: this.#playlist(rendition, '') }
    if (file === rendition.mapUri && rendition.mapObject !== undefined) return { kind: 'object', object: rendition.mapObject }
    return this.#segment(rendition, file)
  }

  #master (): OriginObject {
    const master = this.#title.master
    return { ...master, cacheControl: 'public, max-age=60', body: () => master.body() }
  }

  #segment (rendition: Rendition, file: string): LiveLookup {
    const match = SEGMENT_NAME.exec(file)
    if (match === null || match[2] !== rendition.segmentExt) return { kind: 'not-found' }
    const msn = Number(match[1])
    if (msn > this.liveEdge()) return { kind: 'not-published' }
    const vod = rendition.segments[msn % this.#loopSegments]
    if (vod === undefined) return { kind: 'not-found' }
    const object = vod.object
    return {
      kind: 'object',
      object: { ...object, cacheControl: IMMUTABLE_CACHE_CONTROL, lastModifiedMs: this.#secondsFloor(this.#publishedAtMs(msn)), body: () => object.body() },
    }
  }

  #playlist (rendition: Rendition, uriPrefix: string): OriginObject {
    const mediaSequence = this.mediaSequence()
    const key = `${rendition.name}\0${uriPrefix}`
    const cached = this.#playlistCache.get(key)
    if (cached?.mediaSequence === mediaSequence) return cached.object
    const text = renderLivePlaylist({
      rendition,
      mediaSequence,
      windowSegments: this.#windowSegments,
      loopSegments: this.#loopSegments,
      uriPrefix,
      // A segment's media time ends when it is published, so the newest one ends at about 'now'.
      programDateTimeMs: (msn) => this.#startMs + (msn - this.#windowSegments) * this.#segmentMs,
    })
    const object = makeStaticObject(Buffer.from(text), {
      contentType: contentTypeFor('index.m3u8'),
      cacheControl: `public, max-age=${Math.floor(this.#segmentMs / 2000)}`,
      lastModifiedMs: this.#startMs + mediaSequence * this.#segmentMs,
    })
    this.#playlistCache.set(key, { mediaSequence, object })
    return object
  }

  // Segment msn joins the window (becomes the live edge) when the media sequence
  // reaches msn - window + 1; before the first slide the whole first window exists.
  #publishedAtMs (msn: number): number {
    return this.#startMs + Math.max(0, msn - this.#windowSegments + 1) * this.#segmentMs
  }

  #secondsFloor (ms: number): number {
    return Math.floor(ms / 1000) * 1000
  }
}

/** Inputs of {@link renderLivePlaylist}. */
export interface LivePlaylistInput {
  readonly rendition: Rendition
  readonly mediaSequence: number
  readonly windowSegments: number
  /** Segments per loop of the VOD title. */
  readonly loopSegments: number
  /** Prepended to every URI (empty when the playlist sits in the rendition directory). */
  readonly uriPrefix: string
  /** EXT-X-PROGRAM-DATE-TIME of segment `msn`. */
  readonly programDateTimeMs: (msn: number) => number
}

/**
 * Renders one sliding-window media playlist. The discontinuity sequence counts loop wraps at
 * or before the first listed segment, so a segment's discontinuity number is always
 * floor(msn / loopSegments) whichever window a player first sees it in.
 * @see RFC 8216 §4.3.3.3, §4.3.2.3, §6.2.2
 */
export function renderLivePlaylist (input: LivePlaylistInput): string {
  const { rendition, mediaSequence, windowSegments, loopSegments, uriPrefix } = input
  const lines = [
    '#EXTM3U',
    `#EXT-X-VERSION:${rendition.version}`,
    `#EXT-X-TARGETDURATION:${rendition.targetDurationSec}`,
    `#EXT-X-MEDIA-SEQUENCE:${mediaSequence}`,
    `#EXT-X-DISCONTINUITY-SEQUENCE:${Math.floor(mediaSequence / loopSegments)}`,
  ]
  if (rendition.mapUri !== undefined) lines.push(`#EXT-X-MAP:URI="${uriPrefix}${rendition.mapUri}"`)
  for (let msn = mediaSequence; msn < mediaSequence + windowSegments; msn++) {
    const vod = rendition.segments[msn % loopSegments]
    if (vod === undefined) continue
    const wraps = msn % loopSegments === 0 && msn !== mediaSequence
    if (wraps) lines.push('#EXT-X-DISCONTINUITY')
    if (wraps || msn === mediaSequence) lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(input.programDateTimeMs(msn)).toISOString()}`)
    lines.push(`#EXTINF:${vod.durationSec.toFixed(6)},`, `${uriPrefix}seg-${msn}.${rendition.segmentExt}`)
  }
  lines.push('')
  return lines.join('\n')
}
