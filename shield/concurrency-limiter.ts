/**
 * A concurrency cap with a bounded FIFO queue and a queue-wait deadline: origin protection.
 * At most `maxConcurrent` slots are out at once; up to `maxQueue` callers wait in arrival
 * order; a caller that would make the queue longer, or waits longer than `queueTimeoutMs`,
 * is refused with CDN_ERR_UPSTREAM_OVERLOADED (503 + Retry-After) instead of piling up
 * (HAProxy `maxconn` + `timeout queue`, nginx `max_conns` + `queue`).
 *
 * Every waiter has the same timeout, so deadlines are in queue order and one timer for the
 * head of the queue serves them all.
 */
import { CdnError } from '../lib/errors.ts'

/** Options of {@link ConcurrencyLimiter}. */
export interface ConcurrencyLimiterOptions {
  /** Name in error messages (the origin). */
  readonly name: string
  readonly maxConcurrent: number
  /** Callers allowed to wait for a slot; 0 refuses as soon as every slot is taken. */
  readonly maxQueue: number
  /** Longest wait for a slot. */
  readonly queueTimeoutMs: number
  /** Sent as Retry-After on refusals. */
  readonly retryAfterSeconds: number
  /** Monotonic clock in ms (tests); timers still run on real time. */
  readonly now?: () => number
}

/** A held slot; release it exactly once (extra calls are ignored). */
export interface LimiterSlot {
  release (): void
}

interface Waiter {
  readonly deadlineMs: number
  readonly resolve: (slot: LimiterSlot) => void
  readonly reject: (err: CdnError) => void
  readonly signal: AbortSignal | undefined
  readonly onAbort: (() => void) | undefined
  settled: boolean
}

/** Counts of a limiter, for logs, metrics and tests. */
export interface LimiterStats {
  readonly active: number
  readonly queued: number
  readonly maxActiveSeen: number
  /** Refused because the queue was full. */
  readonly rejectedQueueFull: number
  /** Refused because the wait ran past the deadline. */
  readonly rejectedQueueTimeout: number
}

/** FIFO-queued concurrency cap for one origin. */
export class ConcurrencyLimiter {
  readonly #o: Required<ConcurrencyLimiterOptions>
  /** Waiters in arrival order; `#head` is the first live index (a cheap deque). */
  #queue: Waiter[] = []
  #head = 0
  #queued = 0
  #active = 0
  #maxActiveSeen = 0
  #rejectedQueueFull = 0
  #rejectedQueueTimeout = 0
  #timer: NodeJS.Timeout | undefined

  constructor (options: ConcurrencyLimiterOptions) {
    for (const [field, min] of [['maxConcurrent', 1], ['maxQueue', 0], ['queueTimeoutMs', 1], ['retryAfterSeconds', 0]] as const) {
      const value = options[field]
      if (!Number.isSafeInteger(value) || value < min) {
        throw new TypeError(`Expected options.${field} to be an integer of at least ${min}, got ${String(value)}`)
      }
    }
    this.#o = { now: () => performance.now(), ...options }
  }

  /** True when a caller would get a slot without waiting. */
  get hasFreeSlot (): boolean {
    return this.#active < this.#o.maxConcurrent && this.#queued === 0
  }

  /** True when a caller would get a slot or a place in the queue. */
  get canAccept (): boolean {
    return this.hasFreeSlot || this.#queued < this.#o.maxQueue
  }

  get stats (): LimiterStats {
    return {
      active: this.#active,
      queued: this.#queued,
      maxActiveSeen: this.#maxActiveSeen,
      rejectedQueueFull: this.#rejectedQueueFull,
      rejectedQueueTimeout: this.#rejectedQueueTimeout,
    }
  }

  /** A slot now, or after waiting in line; rejects with CDN_ERR_UPSTREAM_OVERLOADED, or CDN_ERR_CLIENT_ABORTED when `signal` fires. */
  acquire (signal?: AbortSignal): Promise<LimiterSlot> {
    if (signal?.aborted === true) return Promise.reject(aborted())
    if (this.hasFreeSlot) return Promise.resolve(this.#grant())
    if (this.#queued >= this.#o.maxQueue) {
      this.#rejectedQueueFull++
      return Promise.reject(this.#overloaded(`${this.#o.name} has ${this.#active} requests in flight (cap ${this.#o.maxConcurrent}) and ${this.#queued} waiting (queue ${this.#o.maxQueue})`))
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        deadlineMs: this.#o.now() + this.#o.queueTimeoutMs,
        resolve,
        reject,
        signal,
        onAbort: signal === undefined ? undefined : () => this.#cancel(waiter),
        settled: false,
      }
      if (waiter.onAbort !== undefined) signal!.addEventListener('abort', waiter.onAbort, { once: true })
      this.#queue.push(waiter)
      this.#queued++
      if (this.#queued === 1) this.#armTimer()
    })
  }

  /** Refuses every waiter (shutdown); slots already out stay valid. */
  close (): void {
    for (let waiter = this.#shift(); waiter !== undefined; waiter = this.#shift()) {
      this.#settle(waiter)
      waiter.reject(new CdnError('CDN_ERR_UPSTREAM_UNAVAILABLE', `${this.#o.name} is shutting down`))
    }
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #grant (): LimiterSlot {
    this.#active++
    if (this.#active > this.#maxActiveSeen) this.#maxActiveSeen = this.#active
    let released = false
    return {
      release: () => {
        if (released) return
        released = true
        this.#active--
        this.#next()
      },
    }
  }

  /** Hands free slots to the oldest live waiters. */
  #next (): void {
    while (this.#active < this.#o.maxConcurrent) {
      const waiter = this.#shift()
      if (waiter === undefined) break
      this.#settle(waiter)
      waiter.resolve(this.#grant())
    }
    this.#armTimer()
  }

  /** Removes and returns the oldest live waiter. */
  #shift (): Waiter | undefined {
    const waiter = this.#peek()
    if (waiter === undefined) {
      this.#queue = []
      this.#head = 0
      return undefined
    }
    this.#queue[this.#head] = undefined as unknown as Waiter
    this.#head++
    this.#queued--
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head)
      this.#head = 0
    }
    return waiter
  }

  /** The oldest live waiter; skips (and drops) cancelled ones at the front. */
  #peek (): Waiter | undefined {
    while (this.#head < this.#queue.length) {
      const waiter = this.#queue[this.#head]!
      if (!waiter.settled) return waiter
      this.#queue[this.#head] = undefined as unknown as Waiter
      this.#head++
    }
    return undefined
  }

  #cancel (waiter: Waiter): void {
    if (waiter.settled) return
    this.#settle(waiter)
    this.#queued--
    waiter.reject(aborted())
    this.#armTimer()
  }

  #settle (waiter: Waiter): void {
    waiter.settled = true
    if (waiter.onAbort !== undefined) waiter.signal!.removeEventListener('abort', waiter.onAbort)
  }

  /** One timer, for the oldest waiter's deadline. */
  #armTimer (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    const first = this.#peek()
    if (first === undefined) return
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, first.deadlineMs - this.#o.now()))
  }

  #expire (): void {
    this.#timer = undefined
    const now = this.#o.now()
    for (let waiter = this.#peek(); waiter !== undefined && waiter.deadlineMs <= now; waiter = this.#peek()) {
      this.#shift()
      this.#settle(waiter)
      this.#rejectedQueueTimeout++
      waiter.reject(this.#overloaded(`waited ${this.#o.queueTimeoutMs} ms for a free connection to ${this.#o.name} (cap ${this.#o.maxConcurrent})`))
    }
    this.#armTimer()
  }

  #overloaded (why: string): CdnError {
    return new CdnError('CDN_ERR_UPSTREAM_OVERLOADED', `Origin protection: ${why}`, { retryAfterSeconds: this.#o.retryAfterSeconds })
  }
}

function aborted (): CdnError {
  return new CdnError('CDN_ERR_CLIENT_ABORTED', 'Request aborted while waiting for an origin connection')
}
