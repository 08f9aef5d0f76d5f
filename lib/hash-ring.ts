/**
 * Rendezvous (highest-random-weight) hashing with weights: every node gets a pseudo-random
 * score per key, and the key's preference order is the nodes sorted by score. Removing a
 * node moves only the keys it held (each to its own runner-up); adding one takes about
 * weight/total of the keys, from every other node in proportion. The Varnish shard director
 * and ATS `consistent_hash` parents give the same guarantees with a ring of replicas;
 * rendezvous needs no replicas and no ring search, and a handful of shields makes its O(n)
 * per lookup cheaper than a ring's binary search.
 *
 * Scores depend only on the key and the node ids and weights, so every edge configured with
 * the same shields agrees on each key's order without talking to the others.
 * @see https://en.wikipedia.org/wiki/Rendezvous_hashing (Thaler & Ravishankar 1996; weights:
 *   Schindelhauer & Schomaker 2005, score = weight / -ln(u))
 */

/** One node of a {@link HashRing}. */
export interface HashRingNode<T> {
  /** Stable identity (a URL, a name): it seeds the node's scores, so it must be the same everywhere. */
  readonly id: string
  /** Relative share of keys, a positive finite number (default 1). */
  readonly weight?: number
  readonly value: T
}

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193
const TWO_POW_21 = 2 ** 21
const TWO_POW_53 = 2 ** 53

/** Nodes ranked per key by rendezvous hashing. Immutable: build a new one when membership changes. */
export class HashRing<T> {
  readonly #ids: readonly string[]
  readonly #values: readonly T[]
  readonly #seedA: Uint32Array
  readonly #seedB: Uint32Array
  readonly #weights: Float64Array
  /** False when all weights are equal: then the raw uniform score orders the nodes, no logarithm needed. */
  readonly #weighted: boolean
  readonly #scores: Float64Array
  readonly #order: number[]

  constructor (nodes: readonly HashRingNode<T>[]) {
    if (!Array.isArray(nodes)) throw new TypeError(`Expected nodes to be an array, got ${String(nodes)}`)
    const n = nodes.length
    this.#seedA = new Uint32Array(n)
    this.#seedB = new Uint32Array(n)
    this.#weights = new Float64Array(n)
    this.#scores = new Float64Array(n)
    this.#order = Array.from({ length: n }, (_, i) => i)
    const ids: string[] = []
    const values: T[] = []
    const seen = new Set<string>()
    let weighted = false
    for (let i = 0; i < n; i++) {
      const node = nodes[i]!
      if (typeof node.id !== 'string' || node.id === '') {
        throw new TypeError(`Expected nodes[${i}].id to be a non-empty string, got ${JSON.stringify(node.id)}`)
      }
      if (seen.has(node.id)) throw new TypeError(`Expected node ids to be unique, got ${JSON.stringify(node.id)} twice`)
      seen.add(node.id)
      const weight = node.weight ?? 1
      if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
        throw new TypeError(`Expected nodes[${i}].weight to be a positive finite number, got ${String(weight)}`)
      }
      if (i > 0 && weight !== this.#weights[0]) weighted = true
      const h = fmix32(fnv1a32(node.id))
      this.#seedA[i] = h
      this.#seedB[i] = fmix32(h ^ 0x9e3779b9)
      this.#weights[i] = weight
      ids.push(node.id)
      values.push(node.value)
    }
    this.#ids = ids
    this.#values = values
    this.#weighted = weighted
  }

  /** Number of nodes. */
  get size (): number {
    return this.#values.length
  }

  /** The node ids, in construction order. */
  get ids (): readonly string[] {
    return this.#ids
  }

  /** Every node's value, most preferred for `key` first. */
  rank (key: string): T[] {
    this.#score(key)
    const order = this.#order
    const scores = this.#scores
    const ids = this.#ids
    // Insertion sort: a handful of nodes, and it allocates nothing.
    for (let i = 1; i < order.length; i++) {
      const cur = order[i]!
      let j = i - 1
      while (j >= 0 && before(cur, order[j]!, scores, ids)) {
        order[j + 1] = order[j]!
        j--
      }
      order[j + 1] = cur
    }
    const out = new Array<T>(order.length)
    for (let i = 0; i < order.length; i++) out[i] = this.#values[order[i]!]!
    return out
  }

  /** The most preferred node's value for `key` (undefined when empty); allocates nothing. */
  pick (key: string): T | undefined {
    if (this.#values.length === 0) return undefined
    this.#score(key)
    let best = 0
    for (let i = 1; i < this.#scores.length; i++) {
      if (before(i, best, this.#scores, this.#ids)) best = i
    }
    return this.#values[best]
  }

  #score (key: string): void {
    const h = fmix32(fnv1a32(key))
    for (let i = 0; i < this.#scores.length; i++) {
      const u = uniform(h, this.#seedA[i]!, this.#seedB[i]!)
      this.#scores[i] = this.#weighted ? this.#weights[i]! / -Math.log(u) : u
    }
  }
}

/** True when node a outranks node b (higher score; equal scores fall back to the id, so the order is total). */
function before (a: number, b: number, scores: Float64Array, ids: readonly string[]): boolean {
  const sa = scores[a]!
  const sb = scores[b]!
  return sa > sb || (sa === sb && ids[a]! < ids[b]!)
}

/** A uniform number in (0, 1) with 53 random bits, from a key hash and a node's two seeds. */
function uniform (h: number, seedA: number, seedB: number): number {
  const hi = fmix32(h ^ seedA)
  const lo = fmix32((Math.imul(h, 0x85ebca6b) ^ seedB ^ hi) >>> 0)
  return (hi * TWO_POW_21 + (lo >>> 11) + 0.5) / TWO_POW_53
}

/** FNV-1a over the UTF-16 code units of `s` (deterministic in every JS engine). */
export function fnv1a32 (s: string): number {
  let h = FNV_OFFSET
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, FNV_PRIME)
  }
  return h >>> 0
}

/** MurmurHash3's 32-bit finaliser: every input bit flips each output bit with probability about 1/2. */
export function fmix32 (x: number): number {
  let h = x >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
