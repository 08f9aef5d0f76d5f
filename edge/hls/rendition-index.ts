/**
 * What this node knows about the HLS content passing through it, learnt from the
 * playlists it admits: per media playlist (a rendition) its target duration, live or VOD,
 * media sequence and segment URIs; per multivariant playlist its variants. The HLS policy
 * reads it to pick lifetimes, the prefetcher to find segment N+1, prefill to walk a title,
 * and the inventory to name titles.
 *
 * Bounded in memory: least recently used renditions go first once either the rendition
 * count or the total number of indexed segment URIs passes its limit.
 */
import type { MasterPlaylistInfo, MediaPlaylistInfo, VariantRef } from './playlist.ts'
import { directoryOf } from './media-kind.ts'

/** One media playlist (rendition) as last admitted. */
export interface RenditionEntry {
  /** The playlist URL (path and query, without LL-HLS delivery directives). */
  readonly url: string
  readonly info: MediaPlaylistInfo
  /** When it was last recorded (ms). */
  readonly updatedMs: number
  /** When its published position last moved forward (ms): how long a newer playlist has been held. */
  readonly advancedMs: number
  /** Segment URL → index in `info.segments`. */
  readonly positions: ReadonlyMap<string, number>
  /** URLs of its partial segments and preload hints. */
  readonly partUrls: ReadonlySet<string>
}

/** One multivariant playlist. */
export interface MasterEntry {
  readonly url: string
  /** The title prefix: the master's directory. */
  readonly title: string
  readonly variants: readonly VariantRef[]
  readonly updatedMs: number
}

/** Options of {@link RenditionIndex}. */
export interface RenditionIndexOptions {
  /** Most media playlists remembered. */
  readonly maxRenditions: number
  /** Most segment URIs remembered across all renditions. */
  readonly maxSegments: number
  /** Most multivariant playlists remembered. */
  readonly maxMasters?: number
}

/** A published position: media sequence number, then parts (Infinity: the segment is complete). */
export interface PlaylistPosition {
  readonly msn: number
  readonly part: number
}

/** The newest position a media playlist publishes. */
export function positionOf (info: MediaPlaylistInfo): PlaylistPosition {
  return { msn: info.lastMsn, part: info.lastPartCount ?? Number.POSITIVE_INFINITY }
}

/** Negative when `a` is older than `b`, 0 when equal, positive when newer. */
export function comparePositions (a: PlaylistPosition, b: PlaylistPosition): number {
  if (a.msn !== b.msn) return a.msn - b.msn
  if (a.part === b.part) return 0
  return a.part < b.part ? -1 : 1
}

/** The index; see the file comment. */
export class RenditionIndex {
  readonly #maxRenditions: number
  readonly #maxSegments: number
  readonly #maxMasters: number
  // Insertion order is recency order: a touch deletes and re-inserts.
  readonly #renditions = new Map<string, RenditionEntry>()
  readonly #byDir = new Map<string, Set<RenditionEntry>>()
  readonly #masters = new Map<string, MasterEntry>()
  readonly #titles = new Map<string, number>()
  #segments = 0

  constructor (options: RenditionIndexOptions) {
    for (const field of ['maxRenditions', 'maxSegments'] as const) {
      const value = options[field]
      if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`Expected options.${field} to be a positive integer, got ${String(value)}`)
    }
    const maxMasters = options.maxMasters ?? options.maxRenditions
    if (!Number.isSafeInteger(maxMasters) || maxMasters < 1) throw new TypeError(`Expected options.maxMasters to be a positive integer, got ${String(maxMasters)}`)
    this.#maxRenditions = options.maxRenditions
    this.#maxSegments = options.maxSegments
    this.#maxMasters = maxMasters
  }

  /** Media playlists held. */
  get renditions (): number { return this.#renditions.size }
  /** Segment URIs held across renditions. */
  get segments (): number { return this.#segments }
  /** Multivariant playlists held. */
  get masters (): number { return this.#masters.size }

  /**
   * Records an admitted media playlist and returns what was known before. A playlist
   * with more segments than the whole budget is not indexed (undefined entry).
   */
  recordMedia (url: string, info: MediaPlaylistInfo, nowMs: number): { previous: RenditionEntry | undefined, entry: RenditionEntry | undefined } {
    const previous = this.#renditions.get(url)
    if (info.segments.length > this.#maxSegments) return { previous, entry: undefined }
    if (previous !== undefined) this.#remove(previous)
    const advanced = previous === undefined || comparePositions(positionOf(info), positionOf(previous.info)) > 0
    const positions = new Map<string, number>()
    info.segments.forEach((segment, i) => positions.set(segment.url, i))
    for (const map of info.maps) if (!positions.has(map)) positions.set(map, -1)
    const entry: RenditionEntry = {
      url,
      info,
      updatedMs: nowMs,
      advancedMs: advanced ? nowMs : previous.advancedMs,
      positions,
      partUrls: new Set(info.parts.map((p) => p.url)),
    }
    this.#add(entry)
    this.#evict()
    return { previous, entry }
  }

  /** Records an admitted multivariant playlist. */
  recordMaster (url: string, info: MasterPlaylistInfo, nowMs: number): MasterEntry {
    const previous = this.#masters.get(url)
    if (previous !== undefined) this.#removeMaster(previous)
    const entry: MasterEntry = { url, title: directoryOf(url), variants: info.variants, updatedMs: nowMs }
    this.#masters.set(url, entry)
    this.#titles.set(entry.title, (this.#titles.get(entry.title) ?? 0) + 1)
    while (this.#masters.size > this.#maxMasters) {
      const oldest = this.#masters.values().next().value
      if (oldest === undefined) break
      this.#removeMaster(oldest)
    }
    return entry
  }

  /** The rendition recorded for a playlist URL (no recency change). */
  rendition (url: string): RenditionEntry | undefined {
    return this.#renditions.get(url)
  }

  /** The multivariant playlist recorded for a URL. */
  master (url: string): MasterEntry | undefined {
    return this.#masters.get(url)
  }

  /**
   * The rendition listing `url` as a segment or init section, and its index in the
   * segment list (-1 for an init section). Marks the rendition as recently used.
   */
  locateSegment (url: string): { entry: RenditionEntry, position: number } | undefined {
    const found = this.#find(url, (entry) => entry.positions.get(url))
    if (found === undefined) return undefined
    this.#touch(found.entry)
    return found
  }

  /** The rendition listing `url` as a partial segment or preload hint. */
  locatePart (url: string): RenditionEntry | undefined {
    return this.#find(url, (entry) => entry.partUrls.has(url) ? 0 : undefined)?.entry
  }

  /** The most recently updated rendition whose media lives in `url`'s directory. */
  renditionNear (url: string): RenditionEntry | undefined {
    let best: RenditionEntry | undefined
    for (const entry of this.#byDir.get(directoryOf(url)) ?? []) {
      if (best === undefined || entry.updatedMs > best.updatedMs) best = entry
    }
    return best
  }

  /** The title (a multivariant playlist's directory) `url` lies under, longest first; undefined when none is known. */
  titleOf (url: string): string | undefined {
    let dir = directoryOf(url)
    while (dir.length > 1) {
      if (this.#titles.has(dir)) return dir
      dir = dir.slice(0, dir.lastIndexOf('/', dir.length - 2) + 1)
    }
    return undefined
  }

  /** Every multivariant playlist held, least recently recorded first. */
  masterEntries (): IterableIterator<MasterEntry> {
    return this.#masters.values()
  }

  #find (url: string, probe: (entry: RenditionEntry) => number | undefined): { entry: RenditionEntry, position: number } | undefined {
    const entries = this.#byDir.get(directoryOf(url))
    if (entries === undefined) return undefined
    let best: { entry: RenditionEntry, position: number } | undefined
    for (const entry of entries) {
      const position = probe(entry)
      // The same segment may be listed by two playlists (a live and a DVR window): the newest wins.
      if (position !== undefined && (best === undefined || entry.updatedMs > best.entry.updatedMs)) best = { entry, position }
    }
    return best
  }

  #add (entry: RenditionEntry): void {
    this.#renditions.set(entry.url, entry)
    this.#segments += entry.positions.size
    for (const dir of dirsOf(entry)) {
      let set = this.#byDir.get(dir)
      if (set === undefined) {
        set = new Set()
        this.#byDir.set(dir, set)
      }
      set.add(entry)
    }
  }

  #remove (entry: RenditionEntry): void {
    if (this.#renditions.get(entry.url) !== entry) return
    this.#renditions.delete(entry.url)
    this.#segments -= entry.positions.size
    for (const dir of dirsOf(entry)) {
      const set = this.#byDir.get(dir)
      set?.delete(entry)
      if (set?.size === 0) this.#byDir.delete(dir)
    }
  }

  #touch (entry: RenditionEntry): void {
    this.#renditions.delete(entry.url)
    this.#renditions.set(entry.url, entry)
  }

  #evict (): void {
    while (this.#renditions.size > this.#maxRenditions || this.#segments > this.#maxSegments) {
      const oldest = this.#renditions.values().next().value
      if (oldest === undefined) return
      this.#remove(oldest)
    }
  }

  #removeMaster (entry: MasterEntry): void {
    this.#masters.delete(entry.url)
    const count = (this.#titles.get(entry.title) ?? 1) - 1
    if (count <= 0) this.#titles.delete(entry.title)
    else this.#titles.set(entry.title, count)
  }
}

/** Directories holding a rendition's playlist, segments and parts. */
function dirsOf (entry: RenditionEntry): Set<string> {
  const dirs = new Set<string>([directoryOf(entry.url)])
  for (const url of entry.positions.keys()) dirs.add(directoryOf(url))
  for (const url of entry.partUrls) dirs.add(directoryOf(url))
  return dirs
}
