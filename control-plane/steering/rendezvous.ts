/**
 * Weighted rendezvous (highest random weight) hashing, and the bounded-load rule on top.
 *
 * Each node scores `-weight / ln(u)` for a key, with `u` a uniform hash of (key, node) in
 * (0, 1); the highest score wins (Schindelhauer and Schomaker's weighted HRW). A node's share
 * of keys is proportional to its weight, and when a node leaves only its own keys move, each to
 * its own second choice, so a failed node's load spreads over the group instead of landing
 * on one ring neighbour.
 *
 * Bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads",
 * 2016): a node may take a new session only while its load stays within `(1 + ε)` times its
 * weighted share of the group's load; otherwise the key moves to its next choice. One title
 * stays on one node until that node is full, and no node exceeds its share by more than ε
 * (the hot-spot complaint in apache/trafficcontrol#6902).
 */

/** 32-bit FNV-1a of a string's UTF-16 code units (cheap, no allocation). */
export function hashString (text: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** MurmurHash3's 32-bit finaliser: spreads every input bit over the output. */
export function mix32 (value: number): number {
  let h = value >>> 0
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Something that can be ranked: a stable id and a positive weight. */
export interface Weighted {
  readonly id: string
  readonly weight: number
}

/** The HRW score of `node` for a key hash. */
export function rendezvousScore (keyHash: number, node: Weighted, nodeSeed = hashString(node.id)): number {
  const h = mix32(keyHash ^ mix32(nodeSeed))
  const u = (h + 0.5) / 4294967296 // never 0 or 1
  return -node.weight / Math.log(u)
}

/** `nodes` in preference order for `key` (highest score first; ties by id, so the order is total). */
export function rendezvousRank<T extends Weighted> (key: string, nodes: readonly T[]): T[] {
  const keyHash = hashString(key)
  return nodes
    .map((node) => ({ node, score: rendezvousScore(keyHash, node) }))
    .sort((a, b) => b.score - a.score || (a.node.id < b.node.id ? -1 : 1))
    .map((s) => s.node)
}

/**
 * The most a node may carry before it takes one more session: `ceil((1 + slack) ·
 * (groupLoad + 1) · weight / groupWeight)`. `groupLoad` and `groupWeight` sum over the nodes
 * that can take sessions. The ceiling keeps the bound at least 1 for any positive weight.
 */
export function loadBound (groupLoad: number, groupWeight: number, weight: number, slack: number): number {
  return Math.ceil((1 + slack) * (groupLoad + 1) * weight / groupWeight)
}
