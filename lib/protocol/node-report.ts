/**
 * Heartbeats: the load report every edge and shield pushes to the control plane.
 *
 * `POST /v1/heartbeat` with a JSON {@link NodeReport} body, authenticated with a shared key
 * without sending it: the `X-Streamedge-Signature: t=<unix ms>,v1=<hex>` header holds
 * HMAC-SHA256(key, `<t>.<body>`) (the Stripe webhook scheme). The timestamp bounds replays.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

/** Control-plane path that accepts heartbeats. */
export const HEARTBEAT_PATH = '/v1/heartbeat'
/** Header carrying the report's signature. */
export const SIGNATURE_HEADER = 'x-streamedge-signature'
/** A signature older or newer than this is refused (replay window). */
export const DEFAULT_MAX_SIGNATURE_SKEW_MS = 5 * 60_000
/** Largest report body a control plane reads. */
export const MAX_REPORT_BYTES = 64 * 1024

/** One load report. */
export interface NodeReport {
  /** Format version. */
  readonly v: 1
  /** Node id as in the control plane's inventory. */
  readonly id: string
  readonly role: 'edge' | 'shield'
  /** The node's own view: false while starting, draining or shutting down (a self-drain signal). */
  readonly ready: boolean
  /** Open client connections. */
  readonly connections: number
  /** Egress to clients over the last interval, megabits per second. */
  readonly egressMbps: number
  /** Memory tier fill, 0..1 (optional). */
  readonly memoryFill?: number
  /** Disk tier fill, 0..1 (optional). */
  readonly diskFill?: number
  /** When the node built the report (Unix ms, its clock). */
  readonly sentAtMs: number
}

/** Outcome of {@link parseNodeReport}. */
export type ParsedReport =
  | { readonly ok: true, readonly report: NodeReport }
  | { readonly ok: false, readonly error: string }

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/** Validates a decoded JSON body; the error names the first bad field. */
export function parseNodeReport (value: unknown): ParsedReport {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('report must be a JSON object')
  const r = value as Record<string, unknown>
  if (r['v'] !== 1) return fail('v must be 1')
  if (typeof r['id'] !== 'string' || !ID_RE.test(r['id'])) return fail('id must be a node id')
  if (r['role'] !== 'edge' && r['role'] !== 'shield') return fail('role must be edge or shield')
  if (typeof r['ready'] !== 'boolean') return fail('ready must be true or false')
  if (!isCount(r['connections'])) return fail('connections must be a non-negative integer')
  if (!isNonNegative(r['egressMbps'])) return fail('egressMbps must be a non-negative number')
  for (const field of ['memoryFill', 'diskFill']) {
    const fill = r[field]
    if (fill !== undefined && (!isNonNegative(fill) || fill > 1)) return fail(`${field} must be a number from 0 to 1`)
  }
  if (!isCount(r['sentAtMs'])) return fail('sentAtMs must be Unix milliseconds')
  const report: NodeReport = {
    v: 1,
    id: r['id'],
    role: r['role'],
    ready: r['ready'],
    connections: r['connections'],
    egressMbps: r['egressMbps'],
    ...(r['memoryFill'] === undefined ? {} : { memoryFill: r['memoryFill'] as number }),
    ...(r['diskFill'] === undefined ? {} : { diskFill: r['diskFill'] as number }),
    sentAtMs: r['sentAtMs'],
  }
  return { ok: true, report }
}

/** The signature header value for `body` sent at `nowMs`. */
export function signReport (body: string, key: string, nowMs: number): string {
  const t = Math.floor(nowMs)
  return `t=${t},v1=${reportMac(key, t, body)}`
}

/**
 * True when `header` is a valid signature of `body` made within `maxSkewMs` of `nowMs`.
 * The comparison is constant-time.
 */
export function verifyReportSignature (header: string | undefined, body: string, key: string, nowMs: number, maxSkewMs = DEFAULT_MAX_SIGNATURE_SKEW_MS): boolean {
  if (header === undefined) return false
  const match = /^t=(\d{1,15}),v1=([0-9a-f]{64})$/.exec(header.trim())
  if (match === null) return false
  const t = Number(match[1])
  if (Math.abs(nowMs - t) > maxSkewMs) return false
  const expected = Buffer.from(reportMac(key, t, body))
  return timingSafeEqual(expected, Buffer.from(match[2] ?? ''))
}

function reportMac (key: string, t: number, body: string): string {
  return createHmac('sha256', key).update(`${t}.`).update(body).digest('hex')
}

function isCount (value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
}

function isNonNegative (value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
}

function fail (error: string): ParsedReport {
  return { ok: false, error }
}
