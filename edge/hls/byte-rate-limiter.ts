/**
 * A byte-rate cap for background fills (prefetch, prefill): a token bucket that may go
 * into debt. A transfer reserves its expected size and waits for it to be paid before it
 * starts, and settles the difference when it ends, so the average over a run stays at the
 * cap even though sizes are known only afterwards. Time and sleeping are injectable (tests run on a fake clock).
 */

/** Options of {@link ByteRateLimiter}. */
export interface ByteRateLimiterOptions {
  /** Average bytes per second allowed; 0 means no cap. */
  readonly bytesPerSecond: number
  /** Bytes that may go at once after an idle period (default: none, so a run never beats the cap). */
  readonly burstBytes?: number
  readonly now?: () => number
  /** Resolves after `ms`, or rejects when `signal` aborts (default: a timer). */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
}

/** Longest single sleep, so a refund (a reservation that turned out cached) is noticed soon. */
const MAX_SLEEP_MS = 100

/** The limiter; see the file comment. */
export class ByteRateLimiter {
  readonly #rate: number
  readonly #burst: number
  readonly #now: () => number
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>
  #balance: number
  #atMs: number

  constructor (options: ByteRateLimiterOptions) {
    const { bytesPerSecond, burstBytes = 0 } = options
    if (!(Number.isFinite(bytesPerSecond) && bytesPerSecond >= 0)) throw new TypeError(`Expected options.bytesPerSecond to be a non-negative number, got ${String(bytesPerSecond)}`)
    if (!(Number.isFinite(burstBytes) && burstBytes >= 0)) throw new TypeError(`Expected options.burstBytes to be a non-negative number, got ${String(burstBytes)}`)
    this.#rate = bytesPerSecond
    this.#burst = burstBytes
    this.#now = options.now ?? performance.now.bind(performance)
    this.#sleep = options.sleep ?? sleep
    this.#balance = 0
    this.#atMs = this.#now()
  }

  /** The cap in bytes per second (0: none). */
  get bytesPerSecond (): number { return this.#rate }

  /** Milliseconds until the balance is out of debt (0: a transfer may start now). */
  delayMs (): number {
    if (this.#rate === 0) return 0
    const balance = this.#refill()
    return balance >= 0 ? 0 : Math.ceil((-balance / this.#rate) * 1000)
  }

  /** Takes `bytes` (a reservation or bytes just moved); the balance may go negative. */
  take (bytes: number): void {
    if (this.#rate === 0) return
    this.#balance = this.#refill() - bytes
  }

  /** Gives back bytes reserved but not moved. */
  refund (bytes: number): void {
    if (this.#rate === 0) return
    this.#balance = Math.min(this.#burst, this.#refill() + bytes)
  }

  /**
   * Reserves `bytes`, then waits until the reservation is paid for (pay first: the bytes
   * of every transfer started by time T are within the cap at T). Rejects when `signal`
   * aborts, refunding the reservation.
   */
  async acquire (bytes: number, signal?: AbortSignal): Promise<void> {
    this.take(bytes)
    try {
      for (;;) {
        signal?.throwIfAborted()
        const wait = this.delayMs()
        if (wait === 0) return
        await this.#sleep(Math.min(wait, MAX_SLEEP_MS), signal)
      }
    } catch (err) {
      this.refund(bytes)
      throw err
    }
  }

  #refill (): number {
    const now = this.#now()
    const elapsedMs = Math.max(0, now - this.#atMs)
    this.#atMs = now
    this.#balance = Math.min(this.#burst, this.#balance + (elapsedMs / 1000) * this.#rate)
    return this.#balance
  }
}

/** A timer-backed sleep that an AbortSignal cuts short. */
export function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(signal.reason)
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
