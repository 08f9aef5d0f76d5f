/**
 * The node side of heartbeats: every `intervalMs` it samples the node's load through a
 * callback, turns the byte counter into Mbps, signs the report and POSTs it to the control
 * plane. Failures are logged (rate-limited by state change) and never thrown: a node keeps
 * serving when its control plane is away. `stop()` sends a last report with `ready: false`,
 * so the control plane moves new sessions off a node that is shutting down at once.
 */
import type { Logger } from '../log.ts'
import { HEARTBEAT_PATH, SIGNATURE_HEADER, signReport, type NodeReport } from './node-report.ts'

/** What the node knows about itself when a heartbeat is due. */
export interface NodeLoadSample {
  readonly ready: boolean
  readonly connections: number
  /** Body bytes sent to clients since the node started (a monotonic counter). */
  readonly egressBytesTotal: number
  readonly memoryFill?: number
  readonly diskFill?: number
}

/** Options of {@link HeartbeatClient}. */
export interface HeartbeatClientOptions {
  /** Control-plane base URL (`http://cp.example:8090`). */
  readonly controlPlaneUrl: string
  /** Shared heartbeat key (the control plane's `controlPlane.heartbeatKey`). */
  readonly key: string
  readonly nodeId: string
  readonly role: 'edge' | 'shield'
  readonly intervalMs: number
  /** Per-request timeout; defaults to the interval, from 1 s to 5 s. */
  readonly timeoutMs?: number
  readonly sample: () => NodeLoadSample
  readonly logger?: Logger
  readonly now?: () => number
}

/** Result of one send. */
export type HeartbeatOutcome = 'sent' | 'rejected' | 'failed'

/** Pushes signed load reports on a timer. */
export class HeartbeatClient {
  readonly #o: HeartbeatClientOptions
  readonly #url: string
  readonly #now: () => number
  readonly #timeoutMs: number
  #timer: NodeJS.Timeout | undefined
  #last: { atMs: number, bytes: number } | undefined
  #lastOutcome: HeartbeatOutcome | undefined
  #inFlight: Promise<HeartbeatOutcome> | undefined

  constructor (options: HeartbeatClientOptions) {
    if (!URL.canParse(options.controlPlaneUrl)) throw new TypeError(`Expected options.controlPlaneUrl to be a URL, got ${JSON.stringify(options.controlPlaneUrl)}`)
    if (!Number.isSafeInteger(options.intervalMs) || options.intervalMs < 10) throw new TypeError(`Expected options.intervalMs to be an integer of at least 10, got ${String(options.intervalMs)}`)
    if (typeof options.key !== 'string' || options.key === '') throw new TypeError('Expected options.key to be a non-empty string')
    this.#o = options
    this.#url = new URL(HEARTBEAT_PATH, options.controlPlaneUrl).href
    this.#now = options.now ?? Date.now
    this.#timeoutMs = options.timeoutMs ?? Math.min(Math.max(options.intervalMs, 1000), 5000)
  }

  /** Sends one report now, then one every interval. */
  start (): void {
    if (this.#timer !== undefined) return
    void this.sendNow()
    this.#timer = setInterval(() => { void this.sendNow() }, this.#o.intervalMs)
    this.#timer.unref()
  }

  /** Stops the timer; by default sends a final `ready: false` report first. */
  async stop (options: { readonly final?: boolean } = {}): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    await this.#inFlight
    if (options.final !== false) await this.sendNow({ ready: false })
  }

  /** Builds, signs and posts one report. Resolves with what happened; never rejects. */
  sendNow (override: { readonly ready?: boolean } = {}): Promise<HeartbeatOutcome> {
    const sending = this.#send(override).finally(() => {
      if (this.#inFlight === sending) this.#inFlight = undefined
    })
    this.#inFlight = sending
    return sending
  }

  async #send (override: { readonly ready?: boolean }): Promise<HeartbeatOutcome> {
    let body: string
    try {
      body = JSON.stringify(this.#report(override))
    } catch (err) {
      this.#o.logger?.error({ err }, 'heartbeat sample failed')
      return this.#note('failed', 'sample failed')
    }
    const nowMs = this.#now()
    try {
      const res = await fetch(this.#url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SIGNATURE_HEADER]: signReport(body, this.#o.key, nowMs) },
        body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      })
      await res.arrayBuffer()
      if (res.ok) return this.#note('sent')
      return this.#note('rejected', `HTTP ${res.status}`)
    } catch (err) {
      return this.#note('failed', (err as Error).message)
    }
  }

  #report (override: { readonly ready?: boolean }): NodeReport {
    const sample = this.#o.sample()
    const nowMs = this.#now()
    let egressMbps = 0
    if (this.#last !== undefined && nowMs > this.#last.atMs) {
      const bytes = Math.max(0, sample.egressBytesTotal - this.#last.bytes)
      egressMbps = (bytes * 8) / ((nowMs - this.#last.atMs) * 1000)
    }
    this.#last = { atMs: nowMs, bytes: sample.egressBytesTotal }
    return {
      v: 1,
      id: this.#o.nodeId,
      role: this.#o.role,
      ready: override.ready ?? sample.ready,
      connections: sample.connections,
      egressMbps: Math.round(egressMbps * 1000) / 1000,
      ...(sample.memoryFill === undefined ? {} : { memoryFill: sample.memoryFill }),
      ...(sample.diskFill === undefined ? {} : { diskFill: sample.diskFill }),
      sentAtMs: nowMs,
    }
  }

  /** Logs only transitions, so a control plane that is down for an hour costs one line. */
  #note (outcome: HeartbeatOutcome, detail?: string): HeartbeatOutcome {
    if (outcome !== this.#lastOutcome) {
      if (outcome === 'sent') this.#o.logger?.info({ controlPlane: this.#o.controlPlaneUrl }, 'heartbeats accepted')
      else this.#o.logger?.warn({ controlPlane: this.#o.controlPlaneUrl, outcome, detail }, 'heartbeat not accepted')
    }
    this.#lastOutcome = outcome
    return outcome
  }
}
