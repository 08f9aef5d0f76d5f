/**
 * The HLS content policy: how long playlists, segments, parts and 404s live in the cache,
 * which live playlists may replace the stored one, when a live playlist is refreshed ahead
 * of expiry, and where prefetch starts. See docs in README.md "HLS" for the table.
 *
 * Lifetimes (an origin's no-store, private and no-cache are honoured by the pipeline
 * before this policy is asked):
 * - live media playlists (no EXT-X-ENDLIST; a growing EVENT playlist is live too):
 *   `liveLifetimeFraction` × target duration (LL-HLS: at most one part target). An explicit
 *   positive origin lifetime that is shorter wins; a longer one, max-age=0 or none is
 *   replaced, because players are told to reload every target duration whatever the
 *   headers say, and a CDN that obeys max-age=0 sends every reload upstream.
 * - blocking reloads (`_HLS_msn`): one target duration (every later request for the same
 *   position is satisfied by the same playlist); delta updates (`_HLS_skip` only) as live.
 * - VOD playlists, ended EVENT playlists and segments: the origin's explicit lifetime, else
 *   `immutableLifetimeSeconds`. Multivariant playlists: the origin's, else `masterLifetimeSeconds`.
 * - partial segments and preload hints: `partLifetimeParts` × part target at most.
 * - a 404/410 for a segment a live rendition has not published yet: at most
 *   `notPublishedFraction` × target duration (players ask for the next segment early).
 *
 * A live playlist whose published position (EXT-X-MEDIA-SEQUENCE, then the last segment
 * and part) is behind the stored one (a packager failover) is refused: the stored one keeps
 * being served. If the stored one has not moved for `regressionHoldTargetDurations` target
 * durations, the lower playlist is accepted as a restarted stream, so a packager that
 * really restarted does not freeze players forever.
 * @see RFC 8216 §6.2.2 (live playlists), §6.3.4 (reload interval), draft-pantos-hls-rfc8216bis §6.2.5.2 (blocking reload)
 */
import type { Logger } from '../../lib/log.ts'
import type { HlsMetrics } from '../../lib/metrics.ts'
import { currentAgeSeconds, responseDirectives } from '../cache/freshness.ts'
import type { ObjectMeta, StoredHeaders, StoredObject } from '../cache/types.ts'
import { primaryOf } from '../cache/vary.ts'
import type { AdmitDecision, ContentPolicy, PolicyResponse } from '../proxy/content-policy.ts'
import { mediaKindOf } from './media-kind.ts'
import { normalizePlaylistUrls, parsePlaylist, type MediaPlaylistInfo, type PlaylistInfo } from './playlist.ts'
import { comparePositions, positionOf, type RenditionIndex } from './rendition-index.ts'

/** Tunables of {@link HlsPolicy}; {@link HLS_POLICY_DEFAULTS} has the defaults. */
export interface HlsPolicySettings {
  /** Live media playlists live this fraction of their target duration. */
  readonly liveLifetimeFraction: number
  /** A fresh live playlist is refreshed in the background once its age reaches this fraction of its lifetime; 0 turns refresh-ahead off. */
  readonly refreshAheadFraction: number
  /** 404s for segments not published yet live at most this fraction of the target duration. */
  readonly notPublishedFraction: number
  /** Lifetime of segments, VOD and ended EVENT playlists without explicit freshness. */
  readonly immutableLifetimeSeconds: number
  /** Lifetime of multivariant playlists without explicit freshness. */
  readonly masterLifetimeSeconds: number
  /** Partial segments and preload hints live at most this many part target durations. */
  readonly partLifetimeParts: number
  /** A newer live playlist that has not moved for this many target durations gives way to a lower one (a restarted stream). */
  readonly regressionHoldTargetDurations: number
  /** Playlists larger than this are not buffered or parsed (treated as opaque). */
  readonly maxPlaylistBytes: number
}

/** Defaults of {@link HlsPolicySettings}. */
export const HLS_POLICY_DEFAULTS: HlsPolicySettings = Object.freeze({
  liveLifetimeFraction: 0.5,
  refreshAheadFraction: 0.5,
  notPublishedFraction: 0.25,
  immutableLifetimeSeconds: 7 * 24 * 3600,
  masterLifetimeSeconds: 60,
  partLifetimeParts: 12,
  regressionHoldTargetDurations: 6,
  maxPlaylistBytes: 4 * 1024 * 1024,
})

/** Where a served segment goes next (the prefetcher). */
export interface ServedListener {
  onServed (url: string, status: number): void
}

/** Options of {@link HlsPolicy}. */
export interface HlsPolicyOptions extends Partial<HlsPolicySettings> {
  readonly index: RenditionIndex
  readonly metrics: HlsMetrics
  readonly logger: Logger
  /** Normalises a URL found in a playlist into the cache's key form (cache-key.ts). */
  readonly normalize: (url: string) => string
  /** Told about every answered GET (prefetch starts there). */
  readonly served?: ServedListener
  readonly now?: () => number
}

/** Target duration assumed for a segment 404 of a rendition this node has not seen. */
const UNKNOWN_TARGET_DURATION_SEC = 2
/** Shortest lifetime given to a live playlist (a Date header's one-second granularity eats into anything shorter). */
const MIN_LIVE_LIFETIME_SEC = 0.5
/** Query parameters that are LL-HLS delivery directives (draft-pantos-hls-rfc8216bis §6.2.5). */
const DIRECTIVE_PREFIX = '_HLS_'

/** The HLS {@link ContentPolicy}; see the file comment. */
export class HlsPolicy implements ContentPolicy {
  readonly #s: HlsPolicySettings
  readonly #index: RenditionIndex
  readonly #metrics: HlsMetrics
  readonly #logger: Logger
  readonly #normalize: (url: string) => string
  readonly #served: ServedListener | undefined
  readonly #now: () => number
  // Last refresh-ahead per key, so a refresh that did not replace the object (kept, failed) is not asked for on every hit.
  readonly #refreshedAt = new Map<string, number>()

  constructor (options: HlsPolicyOptions) {
    const s = { ...HLS_POLICY_DEFAULTS, ...definedOnly(options) }
    checkFraction(s.liveLifetimeFraction, 'liveLifetimeFraction', false)
    checkFraction(s.refreshAheadFraction, 'refreshAheadFraction', true)
    checkFraction(s.notPublishedFraction, 'notPublishedFraction', true)
    for (const field of ['immutableLifetimeSeconds', 'masterLifetimeSeconds', 'partLifetimeParts', 'regressionHoldTargetDurations', 'maxPlaylistBytes'] as const) {
      const value = s[field]
      if (!(Number.isFinite(value) && value >= 0)) throw new TypeError(`Expected options.${field} to be a non-negative number, got ${String(value)}`)
    }
    this.#s = s
    this.#index = options.index
    this.#metrics = options.metrics
    this.#logger = options.logger
    this.#normalize = options.normalize
    this.#served = options.served
    this.#now = options.now ?? Date.now
  }

  /** Playlists are judged whole (media-sequence check) before any reader sees them. */
  bufferWhole (res: PolicyResponse): boolean {
    if (res.status !== 200 || mediaKindOf(res.url, header(res.headers, 'content-type')) !== 'playlist') return false
    const length = Number(header(res.headers, 'content-length') ?? 0)
    return !(length > this.#s.maxPlaylistBytes)
  }

  admit (res: PolicyResponse, body: Buffer, computedLifetimeSeconds: number, stored: StoredObject | undefined): AdmitDecision {
    const kind = mediaKindOf(res.url, header(res.headers, 'content-type'))
    if (res.status === 404 || res.status === 410) return kind === 'segment' ? this.#notFound(res.url, computedLifetimeSeconds) : STORE
    if (res.status !== 200 || kind === 'other') return STORE
    if (kind === 'segment') return this.#segment(res, computedLifetimeSeconds)
    if (body.length > this.#s.maxPlaylistBytes) return STORE
    const info = parsePlaylist(body.toString('utf8'), res.url)
    if (info === undefined) {
      this.#metrics.playlists.inc({ type: 'unparsed' })
      return STORE
    }
    return this.#playlist(res, normalizePlaylistUrls(info, this.#normalize), computedLifetimeSeconds, stored)
  }

  refreshAhead (meta: ObjectMeta, nowMs: number): boolean {
    const fraction = this.#s.refreshAheadFraction
    if (fraction === 0 || meta.status !== 200) return false
    const key = primaryOf(meta.key)
    const entry = this.#index.rendition(key)
    if (entry === undefined || !entry.info.live) return false
    const lifetime = meta.freshnessLifetimeSeconds
    if (currentAgeSeconds(meta, nowMs) < fraction * lifetime) return false
    const last = this.#refreshedAt.get(key)
    if (last !== undefined && nowMs - last < fraction * lifetime * 1000) return false
    this.#refreshedAt.delete(key)
    this.#refreshedAt.set(key, nowMs)
    if (this.#refreshedAt.size > this.#index.renditions * 2 + 64) {
      const oldest = this.#refreshedAt.keys().next().value
      if (oldest !== undefined) this.#refreshedAt.delete(oldest)
    }
    this.#metrics.refreshAhead.inc({})
    return true
  }

  onServed (url: string, status: number): void {
    this.#served?.onServed(url, status)
  }

  /**
   * LL-HLS: an origin holds a blocking playlist reload (`_HLS_msn`) or a preload-hinted
   * part until it exists, up to about three target durations (draft-pantos-hls-rfc8216bis
   * §6.2.5.2); requests collapsed onto such a fill wait that long (plus a second) before
   * fetching alone, instead of the node's usual lock timeout.
   */
  lockTimeoutMs (url: string): number | undefined {
    const held = directivesOf(url).msn || this.#index.locatePart(url) !== undefined
    if (!held) return undefined
    const rendition = this.#index.renditionNear(url)
    const targetDuration = rendition?.info.targetDurationSec ?? UNKNOWN_TARGET_DURATION_SEC
    return Math.ceil((3 * targetDuration + 1) * 1000)
  }

  #playlist (res: PolicyResponse, info: PlaylistInfo, computed: number, stored: StoredObject | undefined): AdmitDecision {
    const now = this.#now()
    const explicit = explicitLifetime(res.headers, computed)
    if (info.kind === 'master') {
      this.#index.recordMaster(res.url, info, now)
      this.#metrics.playlists.inc({ type: 'master' })
      return store(explicit ?? this.#s.masterLifetimeSeconds)
    }
    const directives = directivesOf(res.url)
    if (directives.msn) {
      // A blocking reload: the plain playlist's entry learns from it only when it is newer.
      this.#recordIfNewer(directives.base, info, now)
      this.#metrics.playlists.inc({ type: 'blocking' })
      return store(capped(explicit, info.targetDurationSec))
    }
    if (!info.live) {
      this.#index.recordMedia(res.url, info, now)
      this.#metrics.playlists.inc({ type: 'vod' })
      return store(explicit ?? this.#s.immutableLifetimeSeconds)
    }
    if (directives.any) {
      // A delta update lists only the newest segments: it must not replace the index's full list.
      this.#metrics.playlists.inc({ type: 'live' })
      return store(capped(explicit, this.#liveLifetime(info)))
    }
    const refused = this.#regression(res.url, info, stored, now)
    if (refused !== undefined) return refused
    this.#index.recordMedia(res.url, info, now)
    this.#metrics.playlists.inc({ type: 'live' })
    return store(capped(explicit, this.#liveLifetime(info)))
  }

  #liveLifetime (info: MediaPlaylistInfo): number {
    let lifetime = this.#s.liveLifetimeFraction * info.targetDurationSec
    // LL-HLS: a plain reload should be at most one part behind; players mostly use blocking reloads anyway.
    if (info.partTargetSec !== undefined && info.partTargetSec > 0) lifetime = Math.min(lifetime, info.partTargetSec)
    return Math.max(MIN_LIVE_LIFETIME_SEC, lifetime)
  }

  /** Refuses a live playlist behind the stored one, unless the stored one stopped moving long ago. */
  #regression (url: string, info: MediaPlaylistInfo, stored: StoredObject | undefined, now: number): AdmitDecision | undefined {
    if (stored === undefined || stored.meta.status !== 200) return undefined
    const entry = this.#index.rendition(url)
    const previous = storedInfo(stored, url, this.#normalize) ?? entry?.info
    if (previous === undefined) return undefined
    const behind = info.mediaSequence < previous.mediaSequence || comparePositions(positionOf(info), positionOf(previous)) < 0
    if (!behind) return undefined
    const heldSinceMs = entry !== undefined && comparePositions(positionOf(entry.info), positionOf(previous)) === 0 ? entry.advancedMs : stored.meta.responseTimeMs
    const holdMs = this.#s.regressionHoldTargetDurations * previous.targetDurationSec * 1000
    const detail = { cacheKey: url, storedMediaSequence: previous.mediaSequence, newMediaSequence: info.mediaSequence, storedLastMsn: previous.lastMsn, newLastMsn: info.lastMsn, heldMs: now - heldSinceMs }
    if (now - heldSinceMs < holdMs) {
      this.#metrics.regressions.inc({ action: 'kept' })
      this.#logger.warn(detail, 'live playlist went backwards (media sequence regression); keeping the stored one')
      return { action: 'keep-stored', reason: 'media-sequence-regression' }
    }
    this.#metrics.regressions.inc({ action: 'accepted' })
    this.#logger.warn(detail, 'live playlist went backwards and the stored one has not moved for the hold time; accepting it as a restarted stream')
    return undefined
  }

  #recordIfNewer (url: string, info: MediaPlaylistInfo, now: number): void {
    if (!info.live || info.skippedSegments > 0) return
    const entry = this.#index.rendition(url)
    if (entry !== undefined && comparePositions(positionOf(info), positionOf(entry.info)) <= 0) return
    this.#index.recordMedia(url, info, now)
  }

  #segment (res: PolicyResponse, computed: number): AdmitDecision {
    const explicit = explicitLifetime(res.headers, computed)
    const rendition = this.#index.locatePart(res.url)
    if (rendition !== undefined) {
      const partTarget = rendition.info.partTargetSec ?? rendition.info.targetDurationSec
      return store(capped(explicit, this.#s.partLifetimeParts * partTarget))
    }
    return store(explicit ?? this.#s.immutableLifetimeSeconds)
  }

  #notFound (url: string, computed: number): AdmitDecision {
    // Listed or not, a live rendition's segment may appear any moment (or was a packager hiccup); a VOD 404 is real.
    const rendition = this.#index.locateSegment(url)?.entry ?? this.#index.renditionNear(url)
    if (rendition !== undefined && !rendition.info.live) return STORE
    const targetDuration = rendition?.info.targetDurationSec ?? UNKNOWN_TARGET_DURATION_SEC
    this.#metrics.notPublished.inc({})
    return store(Math.min(computed, this.#s.notPublishedFraction * targetDuration))
  }
}

const STORE: AdmitDecision = Object.freeze({ action: 'store' as const })

function store (lifetimeSeconds: number): AdmitDecision {
  return { action: 'store', lifetimeSeconds }
}

/** The origin's lifetime when it gave a positive one explicitly (s-maxage, max-age, Expires, CDN-Cache-Control). */
function explicitLifetime (headers: StoredHeaders, computed: number): number | undefined {
  const { cc, targeted } = responseDirectives(headers)
  const explicit = cc.sMaxage !== undefined || cc.maxAge !== undefined || (!targeted && headers.expires !== undefined)
  return explicit && computed > 0 ? computed : undefined
}

function capped (explicit: number | undefined, ours: number): number {
  return explicit === undefined ? ours : Math.min(explicit, ours)
}

/** Which LL-HLS delivery directives a playlist URL carries, and the URL without them. */
export function directivesOf (url: string): { readonly any: boolean, readonly msn: boolean, readonly base: string } {
  const q = url.indexOf('?')
  if (q < 0 || !url.includes(DIRECTIVE_PREFIX, q)) return { any: false, msn: false, base: url }
  const kept: string[] = []
  let msn = false
  for (const pair of url.slice(q + 1).split('&')) {
    if (!pair.startsWith(DIRECTIVE_PREFIX)) {
      kept.push(pair)
      continue
    }
    if (pair.startsWith('_HLS_msn=')) msn = true
  }
  return { any: true, msn, base: kept.length === 0 ? url.slice(0, q) : `${url.slice(0, q)}?${kept.join('&')}` }
}

/** The stored playlist's summary, when its body is at hand. */
function storedInfo (stored: StoredObject, url: string, normalize: (url: string) => string): MediaPlaylistInfo | undefined {
  if (stored.body === null) return undefined
  const info = parsePlaylist(stored.body.toString('utf8'), url)
  return info?.kind === 'media' ? normalizePlaylistUrls(info, normalize) : undefined
}

function header (headers: StoredHeaders, name: string): string | undefined {
  const value = headers[name]
  return typeof value === 'string' ? value : value?.[0]
}

function checkFraction (value: number, field: string, zeroAllowed: boolean): void {
  if (!(Number.isFinite(value) && value <= 1 && (zeroAllowed ? value >= 0 : value > 0))) {
    throw new TypeError(`Expected options.${field} to be a number in ${zeroAllowed ? '[0, 1]' : '(0, 1]'}, got ${String(value)}`)
  }
}

function definedOnly (options: Partial<HlsPolicySettings>): Partial<HlsPolicySettings> {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(HLS_POLICY_DEFAULTS)) {
    const value = (options as Record<string, unknown>)[key]
    if (value !== undefined) out[key] = value
  }
  return out as Partial<HlsPolicySettings>
}
