/**
 * The Cache-Status response header (RFC 9211): one List member per cache that handled
 * the response, with parameters saying what that cache did.
 * @see https://www.rfc-editor.org/rfc/rfc9211
 */
import { isSfToken, parseSfList, toSfString } from './structured-fields.ts'
import type { SfBareItem } from './structured-fields.ts'

/** Why a cache forwarded the request (RFC 9211 §2.2). */
export type CacheStatusFwd =
  'uri-miss' | 'vary-miss' | 'miss' | 'request' | 'stale' | 'partial' | 'bypass' | 'method'

/** One cache's entry in Cache-Status (RFC 9211 §2.1-2.8). */
export interface CacheStatusEntry {
  /** The cache's identifier: serialised as a Token when it is one, else as a String. */
  readonly cache: string
  readonly hit?: boolean
  readonly fwd?: CacheStatusFwd
  readonly fwdStatus?: number
  /** Remaining freshness in seconds, negative when stale (floored to an integer). */
  readonly ttl?: number
  /** `false` is sent as `stored=?0` (we chose not to store). */
  readonly stored?: boolean
  /** `false` is sent as `collapsed=?0` (collapsing was tried and failed). */
  readonly collapsed?: boolean
  readonly key?: string
  readonly detail?: string
}

const FWD_VALUES: ReadonlySet<string> = new Set<CacheStatusFwd>(
  ['uri-miss', 'vary-miss', 'miss', 'request', 'stale', 'partial', 'bypass', 'method'])
// sf-integer range (RFC 8941 §3.3.1).
const SF_INTEGER_MAX = 999_999_999_999_999

let memoName = ''
let memoSerialised = ''

/**
 * Serialises one Cache-Status member, e.g. `streamedge-edge1; hit; ttl=300` or
 * `streamedge-edge1; fwd=uri-miss; fwd-status=200; stored; collapsed`. Parameters
 * appear in RFC 9211 §2 order; `hit: false` is omitted (a forward says it already).
 * @see https://www.rfc-editor.org/rfc/rfc9211#section-2
 */
export function formatCacheStatus (entry: CacheStatusEntry): string {
  let out = cacheName(entry.cache)
  if (entry.hit === true) out += '; hit'
  if (entry.fwd !== undefined) out += '; fwd=' + entry.fwd
  if (entry.fwdStatus !== undefined) out += '; fwd-status=' + sfInteger(entry.fwdStatus)
  if (entry.ttl !== undefined) out += '; ttl=' + sfInteger(entry.ttl)
  if (entry.stored !== undefined) out += entry.stored ? '; stored' : '; stored=?0'
  if (entry.collapsed !== undefined) out += entry.collapsed ? '; collapsed' : '; collapsed=?0'
  if (entry.key !== undefined) out += '; key=' + toSfString(entry.key)
  if (entry.detail !== undefined) out += '; detail=' + (isSfToken(entry.detail) ? entry.detail : toSfString(entry.detail))
  return out
}

/**
 * Parses a Cache-Status field into entries, nearest-to-origin first. An invalid field
 * yields []; members that are not a String or Token, unknown parameters, parameters of
 * the wrong type and unknown `fwd` values are skipped.
 * @see https://www.rfc-editor.org/rfc/rfc9211#section-2
 */
export function parseCacheStatus (value: string | readonly string[] | undefined): CacheStatusEntry[] {
  if (value === undefined) return []
  const members = parseSfList(value)
  if (members === undefined) return []
  const out: CacheStatusEntry[] = []
  for (const m of members) {
    if (m.kind !== 'item' || (m.value.type !== 'string' && m.value.type !== 'token')) continue
    const entry: { -readonly [K in keyof CacheStatusEntry]: CacheStatusEntry[K] } = { cache: m.value.value }
    for (const [name, v] of m.params) applyParam(entry, name, v)
    out.push(entry)
  }
  return out
}

/**
 * Adds our member to an upstream Cache-Status value. RFC 9211 §2: "The first member
 * represents the cache closest to the origin server, and the last member represents
 * the cache closest to the user", and caches SHOULD preserve the existing value; so
 * ours, being nearer the user than whoever set `existing`, goes last.
 * @see https://www.rfc-editor.org/rfc/rfc9211#section-2
 */
export function appendCacheStatus (existing: string | readonly string[] | undefined, ours: string): string {
  const prior = typeof existing === 'string' ? existing.trim() : existing?.join(', ').trim()
  return prior === undefined || prior.length === 0 ? ours : prior + ', ' + ours
}

function cacheName (name: string): string {
  if (name !== memoName) {
    memoSerialised = isSfToken(name) ? name : toSfString(name)
    memoName = name
  }
  return memoSerialised
}

function sfInteger (n: number): string {
  const i = Math.floor(n)
  if (Number.isNaN(i)) return '0'
  if (!Number.isFinite(i)) return i > 0 ? String(SF_INTEGER_MAX) : String(-SF_INTEGER_MAX)
  return String(Math.max(-SF_INTEGER_MAX, Math.min(SF_INTEGER_MAX, i)))
}

function applyParam (entry: { -readonly [K in keyof CacheStatusEntry]: CacheStatusEntry[K] }, name: string, v: SfBareItem): void {
  switch (name) {
    case 'hit':
    case 'stored':
    case 'collapsed':
      if (v.type === 'boolean') entry[name] = v.value
      return
    case 'fwd':
      if (v.type === 'token' && FWD_VALUES.has(v.value)) entry.fwd = v.value as CacheStatusFwd
      return
    case 'fwd-status':
      if (v.type === 'integer') entry.fwdStatus = v.value
      return
    case 'ttl':
      if (v.type === 'integer') entry.ttl = v.value
      return
    case 'key':
      if (v.type === 'string') entry.key = v.value
      return
    case 'detail':
      if (v.type === 'string' || v.type === 'token') entry.detail = v.value
  }
}
