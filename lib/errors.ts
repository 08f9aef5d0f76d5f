/**
 * One error type for the whole project, with stable string codes.
 *
 * Match on `err.code` (see {@link isCdnError}), never on the message. Every code is
 * listed in docs/errors.md; test/lib/errors.test.ts fails when the two drift apart.
 * `source` says which side failed (pingora's ErrorSource): `upstream` errors may be
 * answered from stale content and count against upstream health, `downstream` errors
 * are the client's doing and never count as 5xx, `internal` errors are our bugs.
 */

export type ErrorSource = 'upstream' | 'downstream' | 'internal'

interface CodeSpec {
  readonly status: number
  readonly source: ErrorSource
  readonly retryable: boolean
  readonly message: string
}

export const CODES = {
  CDN_ERR_CONFIG_INVALID: { status: 500, source: 'internal', retryable: false, message: 'Invalid configuration' },
  CDN_ERR_CONFIG_UNKNOWN_KEY: { status: 500, source: 'internal', retryable: false, message: 'Unknown configuration key' },
  CDN_ERR_CONFIG_FILE: { status: 500, source: 'internal', retryable: false, message: 'Configuration file cannot be read or parsed' },
  CDN_ERR_UPSTREAM_CONNECT: { status: 502, source: 'upstream', retryable: true, message: 'Could not connect to upstream' },
  CDN_ERR_UPSTREAM_TIMEOUT: { status: 504, source: 'upstream', retryable: true, message: 'Upstream did not answer in time' },
  CDN_ERR_UPSTREAM_BODY_TIMEOUT: { status: 504, source: 'upstream', retryable: false, message: 'Upstream body stalled' },
  CDN_ERR_UPSTREAM_TRUNCATED: { status: 502, source: 'upstream', retryable: false, message: 'Upstream body ended before its declared length' },
  CDN_ERR_UPSTREAM_PROTOCOL: { status: 502, source: 'upstream', retryable: false, message: 'Upstream sent an invalid response' },
  CDN_ERR_UPSTREAM_UNAVAILABLE: { status: 502, source: 'upstream', retryable: true, message: 'No upstream could serve the request' },
  CDN_ERR_UPSTREAM_OVERLOADED: { status: 503, source: 'upstream', retryable: true, message: 'Upstream is at its concurrency cap; retry later' },
  CDN_ERR_CLIENT_ABORTED: { status: 499, source: 'downstream', retryable: false, message: 'Client closed the request' },
  CDN_ERR_REQUEST_INVALID: { status: 400, source: 'downstream', retryable: false, message: 'Malformed request' },
  CDN_ERR_RANGE_UNSATISFIABLE: { status: 416, source: 'downstream', retryable: false, message: 'Range not satisfiable' },
  CDN_ERR_STORE_WRITE: { status: 500, source: 'internal', retryable: false, message: 'Could not write the object to the store' },
  CDN_ERR_STORE_CORRUPT: { status: 500, source: 'internal', retryable: false, message: 'Stored object failed its integrity checks' },
  CDN_ERR_LOCK_TIMEOUT: { status: 504, source: 'internal', retryable: true, message: 'Waited too long for a shared fill' },
  CDN_ERR_TOKEN_INVALID: { status: 403, source: 'downstream', retryable: false, message: 'Missing, invalid, expired or out-of-scope playback token' },
  CDN_ERR_LICENCE_DENIED: { status: 451, source: 'downstream', retryable: false, message: 'Not licensed for the client location' },
  CDN_ERR_GEO_UNKNOWN: { status: 403, source: 'downstream', retryable: false, message: 'Client location unknown and the policy refuses such clients' },
  CDN_ERR_NO_NODE: { status: 503, source: 'upstream', retryable: true, message: 'No edge is available for this client' },
  CDN_ERR_UNAUTHORIZED: { status: 401, source: 'downstream', retryable: false, message: 'Missing or wrong credentials' },
  CDN_ERR_NOT_FOUND: { status: 404, source: 'downstream', retryable: false, message: 'No such resource' },
  CDN_ERR_INTERNAL: { status: 500, source: 'internal', retryable: false, message: 'Internal error' },
} as const satisfies Record<string, CodeSpec>

export type ErrorCode = keyof typeof CODES

export interface CdnErrorOptions {
  readonly cause?: unknown
  /** Overrides the code's default HTTP status. */
  readonly status?: number
  /** Seconds a client should wait before retrying; sent as Retry-After (RFC 9110 §10.2.3). */
  readonly retryAfterSeconds?: number
}

export class CdnError extends Error {
  readonly code: ErrorCode
  readonly source: ErrorSource
  readonly status: number
  readonly retryable: boolean
  /** Seconds for a Retry-After header (RFC 9110 §10.2.3), when the error says when to come back. */
  readonly retryAfterSeconds: number | undefined

  constructor (code: ErrorCode, message?: string, options: CdnErrorOptions = {}) {
    const spec: CodeSpec = CODES[code]
    super(message ?? spec.message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'CdnError'
    this.code = code
    this.source = spec.source
    this.status = options.status ?? spec.status
    this.retryable = spec.retryable
    this.retryAfterSeconds = options.retryAfterSeconds
  }
}

/**
 * A bad value as a message shows it: JSON (strings quoted), `undefined`, and non-finite
 * numbers by name (JSON would write YAML's `.inf` and `.nan` as null, and a message would say
 * "got null" for a value that is not); cut at 80 characters.
 */
export function showValue (value: unknown): string {
  const text = value === undefined || (typeof value === 'number' && !Number.isFinite(value)) ? String(value) : JSON.stringify(value) ?? String(value)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

/** True when `err` is a CdnError, and has `code` when one is given. */
export function isCdnError (err: unknown, code?: ErrorCode): err is CdnError {
  return err instanceof CdnError && (code === undefined || err.code === code)
}
