/**
 * The one thing prefetch and prefill need from the pipeline: make sure a URL is cached
 * (CacheProxy.warm). A function type, so both are testable without a node.
 */

/** What warming one URL did. */
export interface WarmOutcome {
  /** cached: fresh in storage already; filled: fetched and stored; joined: rode along another fill; not-stored / failed. */
  readonly result: 'cached' | 'filled' | 'joined' | 'not-stored' | 'failed'
  readonly status?: number
  /** Body bytes fetched from upstream for it (0 when cached). */
  readonly bytes: number
}

/** Makes sure `url` (path and query, cache-key form) is cached; never rejects for HTTP failures. */
export type Warm = (url: string, options: { readonly signal?: AbortSignal }) => Promise<WarmOutcome>
