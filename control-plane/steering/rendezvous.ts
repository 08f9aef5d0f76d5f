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

import { HashRing, type HashRingNode } from '../../lib/hash-ring.ts'

/** Something that can be ranked: a stable id and a positive weight. */
export interface Weighted {
  readonly id: string
  readonly weight: number
}

/**
 * `nodes` in preference order for `key`: weighted rendezvous hashing from lib/hash-ring.ts
 * (the same ranking the edges use for shields), so the order is total and independent of
 * the input order.
 */
export function rendezvousRank<T extends Weighted> (key: string, nodes: readonly T[]): T[] {
  return rendezvousRing(nodes.map((node) => ({ id: node.id, weight: node.weight, value: node }))).rank(key)
}

/** The ring {@link rendezvousRank} ranks with, to build once and rank many keys with. */
export function rendezvousRing<T> (nodes: ReadonlyArray<HashRingNode<T>>): HashRing<T> {
  return new HashRing(nodes)
}

/**
 * The most a node may carry before it takes one more session: `ceil((1 + slack) ·
 * (groupLoad + 1) · weight / groupWeight)`. `groupLoad` and `groupWeight` sum over the nodes
 * that can take sessions. The ceiling keeps the bound at least 1 for any positive weight.
 */
export function loadBound (groupLoad: number, groupWeight: number, weight: number, slack: number): number {
  return Math.ceil((1 + slack) * (groupLoad + 1) * weight / groupWeight)
}
