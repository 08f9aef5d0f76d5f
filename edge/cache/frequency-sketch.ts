/**
 * An approximate, aging access counter for cache admission (TinyLFU: Einziger, Friedman,
 * Manes, "TinyLFU: A Highly Efficient Cache Admission Policy", ACM ToS 2017; the layout
 * follows Caffeine's FrequencySketch). A count-min sketch of 4 rows of 4-bit counters:
 * each key bumps one counter per row and its estimate is the smallest of the four. After
 * `sampleSize` increments every counter is halved, so old popularity fades.
 */

/** Counters saturate here (4 bits), which also makes equally popular keys compare equal. */
export const MAX_FREQUENCY = 15

const ROWS = 4
const SEEDS = [0x97cb3127, 0x5bd1e995, 0x85ebca6b, 0xc2b2ae35] as const

/** Options of {@link FrequencySketch}. */
export interface FrequencySketchOptions {
  /** Counters per row, rounded up to a power of two: about the number of keys worth telling apart. */
  readonly width: number
  /** Increments between two halvings (default 10 × width, as in TinyLFU). */
  readonly sampleSize?: number
}

/** Count-min sketch of recent access frequencies, 0..MAX_FREQUENCY per key. */
export class FrequencySketch {
  readonly #table: Uint8Array
  readonly #mask: number
  readonly #sampleSize: number
  #additions = 0

  constructor (options: FrequencySketchOptions) {
    const { width, sampleSize } = options
    if (!Number.isSafeInteger(width) || width < 1 || width > 2 ** 24) {
      throw new TypeError(`Expected options.width to be an integer from 1 to ${2 ** 24}, got ${String(width)}`)
    }
    const size = 2 ** Math.ceil(Math.log2(width))
    const samples = sampleSize ?? 10 * size
    if (!Number.isSafeInteger(samples) || samples < 1) {
      throw new TypeError(`Expected options.sampleSize to be a positive integer, got ${String(sampleSize)}`)
    }
    this.#table = new Uint8Array(ROWS * size)
    this.#mask = size - 1
    this.#sampleSize = samples
  }

  /** Records one access to `key`. */
  increment (key: string): void {
    const h = hashString(key)
    const size = this.#mask + 1
    for (let row = 0; row < ROWS; row++) {
      const i = row * size + this.#slot(h, row)
      if (this.#table[i]! < MAX_FREQUENCY) this.#table[i]!++
    }
    // Every access counts toward the sample, saturated or not: otherwise a set of equally hot
    // keys that all reached the cap would stop the clock and freeze the ranking.
    if (++this.#additions >= this.#sampleSize) this.#age()
  }

  /** The estimated number of recent accesses to `key` (never an underestimate before aging). */
  frequency (key: string): number {
    const h = hashString(key)
    const size = this.#mask + 1
    let min = MAX_FREQUENCY
    for (let row = 0; row < ROWS; row++) {
      const count = this.#table[row * size + this.#slot(h, row)]!
      if (count < min) min = count
    }
    return min
  }

  #slot (h: number, row: number): number {
    const x = Math.imul(h ^ SEEDS[row]!, 0x9e3779b1)
    return (x ^ (x >>> 15)) & this.#mask
  }

  // Halving keeps the ranking and forgets old traffic (TinyLFU's "reset").
  #age (): void {
    const table = this.#table
    for (let i = 0; i < table.length; i++) table[i] = table[i]! >>> 1
    this.#additions = 0
  }
}

/** 32-bit FNV-1a over UTF-16 code units, with a final avalanche (murmur3 fmix32). */
function hashString (s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
