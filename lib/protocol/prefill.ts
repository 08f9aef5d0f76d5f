/**
 * Pre-positioning messages (Open Connect style fill), shared by nodes, the CLI and the
 * control plane:
 *
 *   POST   /admin/prefill        {@link PrefillRequest} → 202 {@link PrefillJobStatus}
 *   GET    /admin/prefill        { jobs: PrefillJobStatus[] }
 *   GET    /admin/prefill/<id>   {@link PrefillJobStatus}
 *   DELETE /admin/prefill/<id>   cancels a job → its status
 *   GET    /admin/inventory      {@link InventoryReport}: the titles a node holds
 *
 * A title is named by the path of its multivariant (master) playlist; a path ending in `/`
 * means `<path>master.m3u8`. In an inventory a title is the directory of its master
 * playlist (`/vod/t1/`), the same prefix the control plane steers and signs tokens for.
 */

/** Node path that starts and lists prefill jobs. */
export const NODE_PREFILL_PATH = '/admin/prefill'
/** Node path of the title inventory. */
export const NODE_INVENTORY_PATH = '/admin/inventory'
/** Control-plane path that asks nodes to prefill. */
export const FANOUT_PREFILL_PATH = '/v1/prefill'
/** Control-plane path of the fleet's title inventory. */
export const FLEET_INVENTORY_PATH = '/v1/inventory'

/** Which variant streams of a master playlist to fill. */
export type RenditionChoice = 'all' | 'highest' | 'lowest'
export const RENDITION_CHOICES: readonly RenditionChoice[] = ['all', 'highest', 'lowest']

/** Largest number of titles in one request. */
export const MAX_PREFILL_TITLES = 1000

/** What to fill and how fast. */
export interface PrefillRequest {
  /** Master (or media) playlist paths; `/vod/t1/` means `/vod/t1/master.m3u8`. */
  readonly titles: readonly string[]
  /** Variant streams to fill (default `all`); EXT-X-MEDIA renditions of the chosen variants come along. */
  readonly renditions?: RenditionChoice
  /** Skip variants whose BANDWIDTH (bits/s) is above this. */
  readonly maxBandwidth?: number
  /** Upstream bytes per second for this job; absent uses the node's default cap, 0 means no cap. */
  readonly bytesPerSecond?: number
  /** Segments fetched at once; absent uses the node's default. */
  readonly concurrency?: number
  /** Daily UTC window `HH:MM-HH:MM` (may wrap midnight) outside which the job pauses. */
  readonly window?: string
}

export type PrefillState = 'waiting' | 'running' | 'done' | 'failed' | 'cancelled'

/** A job's progress, as nodes report it. */
export interface PrefillJobStatus {
  readonly id: string
  readonly state: PrefillState
  readonly titles: readonly string[]
  readonly createdAtMs: number
  readonly updatedAtMs: number
  readonly finishedAtMs?: number
  /** Media playlists read so far. */
  readonly playlists: number
  /** Segments found so far (grows while playlists are read). */
  readonly segmentsTotal: number
  /** Segments dealt with: filled + cached + failed. */
  readonly segmentsDone: number
  readonly segmentsFilled: number
  /** Already cached (a resumed job skips them). */
  readonly segmentsCached: number
  readonly segmentsFailed: number
  /** Body bytes fetched from upstream. */
  readonly bytes: number
  /** The cap in force (0: none). */
  readonly bytesPerSecond: number
  /** Why the job failed, or what went wrong with a title. */
  readonly errors: readonly string[]
}

/** One title a node holds. */
export interface InventoryTitle {
  /** Title prefix, e.g. `/vod/t1/`. */
  readonly title: string
  /** Segments (and init sections) of the title in the node's cache. */
  readonly segments: number
}

/** The titles a node holds. */
export interface InventoryReport {
  readonly v: 1
  readonly node: string
  readonly generatedAtMs: number
  readonly titles: readonly InventoryTitle[]
}

/** A parse outcome: the value, or an error naming the first bad field. */
export type Parsed<T> = { readonly ok: true, readonly value: T } | { readonly ok: false, readonly error: string }

const WINDOW_RE = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$/

/** A daily UTC window in minutes after midnight; `end < start` wraps midnight. */
export interface DailyWindow {
  readonly startMinute: number
  readonly endMinute: number
}

/** Parses `HH:MM-HH:MM` (UTC). Undefined when malformed or empty (start equals end). */
export function parseDailyWindow (text: string): DailyWindow | undefined {
  const m = WINDOW_RE.exec(text.trim())
  if (m === null) return undefined
  const startMinute = Number(m[1]) * 60 + Number(m[2])
  const endMinute = Number(m[3]) * 60 + Number(m[4])
  return startMinute === endMinute ? undefined : { startMinute, endMinute }
}

/** True for a content path a node can fill: absolute, no dot segments, no encoded slashes or controls. */
export function isPrefillPath (path: string): boolean {
  if (!path.startsWith('/') || path.startsWith('//') || path.length > 2048) return false
  if (/[\u0000-\u001f\s]/.test(path) || /%2f|%5c|%00/i.test(path)) return false
  const pathOnly = path.split('?')[0] ?? ''
  return !pathOnly.split('/').some((seg) => seg === '.' || seg === '..' || /^(%2e|\.){1,2}$/i.test(seg))
}

/** Validates a decoded `POST /admin/prefill` body. */
export function parsePrefillRequest (value: unknown): Parsed<PrefillRequest> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('body must be a JSON object')
  const v = value as Record<string, unknown>
  const known = new Set(['titles', 'renditions', 'maxBandwidth', 'bytesPerSecond', 'concurrency', 'window'])
  const unknown = Object.keys(v).find((k) => !known.has(k))
  if (unknown !== undefined) return fail(`unknown field ${unknown}`)
  const titles = v['titles']
  if (!Array.isArray(titles) || titles.length === 0 || titles.length > MAX_PREFILL_TITLES) return fail(`titles must be a list of 1 to ${MAX_PREFILL_TITLES} paths`)
  for (const title of titles) {
    if (typeof title !== 'string' || !isPrefillPath(title)) return fail(`titles must be paths starting with / without dot segments, got ${JSON.stringify(title)}`)
  }
  const renditions = v['renditions']
  if (renditions !== undefined && !RENDITION_CHOICES.includes(renditions as RenditionChoice)) return fail(`renditions must be one of ${RENDITION_CHOICES.join(', ')}`)
  for (const field of ['maxBandwidth', 'bytesPerSecond'] as const) {
    const n = v[field]
    if (n !== undefined && !(Number.isSafeInteger(n) && (n as number) >= 0)) return fail(`${field} must be a non-negative integer`)
  }
  const concurrency = v['concurrency']
  if (concurrency !== undefined && !(Number.isSafeInteger(concurrency) && (concurrency as number) >= 1 && (concurrency as number) <= 256)) return fail('concurrency must be an integer from 1 to 256')
  const window = v['window']
  if (window !== undefined && (typeof window !== 'string' || parseDailyWindow(window) === undefined)) return fail('window must be HH:MM-HH:MM (UTC) with different start and end')
  return {
    ok: true,
    value: {
      titles: titles as string[],
      ...(renditions === undefined ? {} : { renditions: renditions as RenditionChoice }),
      ...(v['maxBandwidth'] === undefined ? {} : { maxBandwidth: v['maxBandwidth'] as number }),
      ...(v['bytesPerSecond'] === undefined ? {} : { bytesPerSecond: v['bytesPerSecond'] as number }),
      ...(concurrency === undefined ? {} : { concurrency: concurrency as number }),
      ...(window === undefined ? {} : { window: window as string }),
    },
  }
}

const STATES: readonly PrefillState[] = ['waiting', 'running', 'done', 'failed', 'cancelled']
const COUNTS = ['createdAtMs', 'updatedAtMs', 'playlists', 'segmentsTotal', 'segmentsDone', 'segmentsFilled', 'segmentsCached', 'segmentsFailed', 'bytes', 'bytesPerSecond'] as const

/** Validates a job status read back from a node (the CLI and the control plane). */
export function parsePrefillJobStatus (value: unknown): Parsed<PrefillJobStatus> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('status must be a JSON object')
  const v = value as Record<string, unknown>
  if (typeof v['id'] !== 'string' || v['id'] === '') return fail('id must be a string')
  if (!STATES.includes(v['state'] as PrefillState)) return fail(`state must be one of ${STATES.join(', ')}`)
  if (!Array.isArray(v['titles']) || !v['titles'].every((x) => typeof x === 'string')) return fail('titles must be a list of strings')
  for (const field of COUNTS) if (!isCount(v[field])) return fail(`${field} must be a non-negative integer`)
  if (v['finishedAtMs'] !== undefined && !isCount(v['finishedAtMs'])) return fail('finishedAtMs must be a non-negative integer')
  if (!Array.isArray(v['errors']) || !v['errors'].every((x) => typeof x === 'string')) return fail('errors must be a list of strings')
  return { ok: true, value: v as unknown as PrefillJobStatus }
}

/** Validates an inventory read back from a node. */
export function parseInventoryReport (value: unknown): Parsed<InventoryReport> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('inventory must be a JSON object')
  const v = value as Record<string, unknown>
  if (v['v'] !== 1) return fail('v must be 1')
  if (typeof v['node'] !== 'string') return fail('node must be a string')
  if (!isCount(v['generatedAtMs'])) return fail('generatedAtMs must be Unix milliseconds')
  const titles = v['titles']
  if (!Array.isArray(titles)) return fail('titles must be a list')
  for (const entry of titles) {
    const e = entry as Record<string, unknown> | null
    if (typeof e !== 'object' || e === null || typeof e['title'] !== 'string' || !e['title'].startsWith('/') || !isCount(e['segments'])) {
      return fail('each title must be {title: "/path/", segments: n}')
    }
  }
  return { ok: true, value: { v: 1, node: v['node'], generatedAtMs: v['generatedAtMs'] as number, titles: titles as InventoryTitle[] } }
}

function isCount (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function fail<T> (error: string): Parsed<T> {
  return { ok: false, error }
}
