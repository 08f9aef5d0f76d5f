/**
 * Purge messages. A node answers `POST /admin/purge` (bearer admin token) with a JSON
 * {@link PurgeRequest}; the control plane's `POST /v1/purge` takes the same body and fans it
 * out to every node, answering a {@link PurgeFanoutResult}.
 */

/** Node path that purges its cache. */
export const NODE_PURGE_PATH = '/admin/purge'
/** Control-plane path that purges every node. */
export const FANOUT_PURGE_PATH = '/v1/purge'

/** Purge one URL (all its variants) or everything under a path prefix. */
export type PurgeRequest = { readonly url: string } | { readonly prefix: string }

/** What one node answered. */
export interface PurgeNodeResult {
  readonly node: string
  readonly ok: boolean
  /** HTTP status, when the node answered at all. */
  readonly status?: number
  /** Objects purged, when the node said. */
  readonly purged?: number
  readonly error?: string
  readonly durationMs: number
}

/** The control plane's answer: `ok` only when every node purged. */
export interface PurgeFanoutResult {
  readonly ok: boolean
  readonly request: PurgeRequest
  readonly results: readonly PurgeNodeResult[]
}

/** Validates a decoded body: exactly one of `url` or `prefix`, a path starting with `/`. */
export function parsePurgeRequest (value: unknown): { ok: true, request: PurgeRequest } | { ok: false, error: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: 'body must be a JSON object' }
  const v = value as Record<string, unknown>
  const keys = Object.keys(v)
  if (keys.length !== 1 || (keys[0] !== 'url' && keys[0] !== 'prefix')) return { ok: false, error: 'body must have exactly one of url or prefix' }
  const text = v[keys[0]]
  if (typeof text !== 'string' || !text.startsWith('/') || text.length > 8192 || /[\u0000-\u001f]/.test(text)) {
    return { ok: false, error: `${keys[0]} must be a path starting with /` }
  }
  return { ok: true, request: keys[0] === 'url' ? { url: text } : { prefix: text } }
}
