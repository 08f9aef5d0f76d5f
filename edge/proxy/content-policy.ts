/**
 * Content policy: the hooks through which content-aware rules (HLS: live playlist
 * lifetimes, media-sequence checks, short 404s for unpublished segments, refresh-ahead,
 * prefetch) steer the generic pipeline without it knowing any format.
 *
 * The pipeline calls these on its hot path: implementations must be fast, must not
 * throw, and must not block (start background work and return).
 */
import type { ObjectMeta, StoredHeaders, StoredObject } from '../cache/types.ts'

/** A complete or arriving upstream response as the policy sees it. */
export interface PolicyResponse {
  /** The URL's cache key (normalised path and query), what went upstream. */
  readonly url: string
  readonly status: number
  readonly headers: StoredHeaders
}

export type AdmitDecision =
  /** Store it; `lifetimeSeconds` replaces the computed freshness lifetime when given. */
  | { readonly action: 'store', readonly lifetimeSeconds?: number }
  /**
   * Do not replace what is stored (e.g. a live playlist whose media sequence went
   * backwards). For a buffered response the readers are answered with the stored object
   * instead; otherwise the response is simply not stored. `reason` is logged and counted.
   */
  | { readonly action: 'keep-stored', readonly reason: string }
  /** Do not store it (counted with `reason`). */
  | { readonly action: 'reject', readonly reason: string }

export interface ContentPolicy {
  /**
   * Hold this response until its body is complete, so `admit` can decide before any
   * reader sees a byte (small bodies such as playlists). Called once per response head.
   */
  bufferWhole (res: PolicyResponse): boolean
  /**
   * Decides about a complete response the pipeline would store (it passed the HTTP
   * storability checks, or is a 404/410 being negatively cached). `stored` is the object
   * currently stored under the same key, if the pipeline has it at hand.
   */
  admit (res: PolicyResponse, body: Buffer, computedLifetimeSeconds: number, stored: StoredObject | undefined): AdmitDecision
  /** A fresh hit was served: true asks for one background refresh now (refresh-ahead). */
  refreshAhead (meta: ObjectMeta, nowMs: number): boolean
  /** A GET for `url` was answered (hit or fill, any status): prefetchers start here. */
  onServed (url: string, status: number): void
  /**
   * How long a request may wait for another request's fill of `url` before fetching
   * alone (LL-HLS blocking reloads are held by the origin for up to a few target
   * durations); undefined: the node's lockTimeoutMs.
   */
  lockTimeoutMs? (url: string): number | undefined
}

/** The policy of a plain HTTP cache: no content rules. */
export const NO_CONTENT_POLICY: ContentPolicy = Object.freeze({
  bufferWhole: () => false,
  admit: () => ({ action: 'store' as const }),
  refreshAhead: () => false,
  onServed: () => {},
})
