/**
 * Weighted rendezvous hashing: even spread, spread by weight, minimal movement when a node
 * leaves (only its keys move, and they spread over the others) or joins (about 1/n moves).
 */
import t from 'tap'
import { loadBound, rendezvousRank } from '../../../control-plane/steering/rendezvous.ts'

const KEYS = Array.from({ length: 20_000 }, (_, i) => `/vod/title-${i}/`)
const nodes = (n: number, weight = 100): Array<{ id: string, weight: number }> => Array.from({ length: n }, (_, i) => ({ id: `edge-${i}`, weight }))
const owners = (list: ReadonlyArray<{ id: string, weight: number }>): Map<string, string> => new Map(KEYS.map((k) => [k, rendezvousRank(k, list)[0]!.id]))
const counts = (owner: Map<string, string>): Map<string, number> => {
  const out = new Map<string, number>()
  for (const id of owner.values()) out.set(id, (out.get(id) ?? 0) + 1)
  return out
}

t.test('keys spread evenly over equal nodes', async (t) => {
  const c = counts(owners(nodes(5)))
  for (const [id, n] of c) t.ok(Math.abs(n - KEYS.length / 5) < KEYS.length / 5 * 0.05, `${id} has ${n} keys (within 5 % of even)`)
})

t.test('keys spread by weight', async (t) => {
  const list = [{ id: 'big', weight: 300 }, { id: 'mid', weight: 200 }, { id: 'small', weight: 100 }]
  const c = counts(owners(list))
  for (const node of list) {
    const expected = KEYS.length * node.weight / 600
    t.ok(Math.abs((c.get(node.id) ?? 0) - expected) < expected * 0.05, `${node.id}: ${c.get(node.id)} keys, expected ~${expected}`)
  }
})

t.test('a leaving node moves only its own keys, spread over the rest', async (t) => {
  const before = owners(nodes(5))
  const after = owners(nodes(5).filter((n) => n.id !== 'edge-2'))
  let moved = 0
  const receivers = new Map<string, number>()
  for (const [key, owner] of before) {
    const now = after.get(key)!
    if (owner === now) continue
    moved++
    if (owner !== 'edge-2') t.fail(`${key} moved from ${owner}, which stayed`)
    receivers.set(now, (receivers.get(now) ?? 0) + 1)
  }
  t.equal(moved, [...before.values()].filter((o) => o === 'edge-2').length, 'all of its keys moved')
  for (const [id, n] of receivers) t.ok(n > moved / 4 * 0.8, `${id} took ${n} of ${moved}: no single ring neighbour takes them all`)
})

t.test('a joining node takes about 1/n of the keys, and only from others', async (t) => {
  const before = owners(nodes(4))
  const after = owners(nodes(5))
  let moved = 0
  for (const [key, owner] of before) {
    if (after.get(key) !== owner) {
      moved++
      if (after.get(key) !== 'edge-4') t.fail('a key moved between old nodes')
    }
  }
  t.ok(Math.abs(moved - KEYS.length / 5) < KEYS.length / 5 * 0.08, `${moved} keys moved to the new node (~${KEYS.length / 5})`)
})

t.test('the order is total and deterministic', async (t) => {
  const a = rendezvousRank('/vod/x/', nodes(8)).map((n) => n.id)
  const b = rendezvousRank('/vod/x/', [...nodes(8)].reverse()).map((n) => n.id)
  t.same(a, b, 'input order does not matter')
  t.equal(new Set(a).size, 8)
})

t.test('the load bound is the weighted share plus slack, at least 1', async (t) => {
  t.equal(loadBound(0, 300, 100, 0.25), 1)
  t.equal(loadBound(99, 300, 100, 0.25), 42) // ceil(1.25 * 100 / 3)
  t.equal(loadBound(99, 300, 200, 0), 67)
})
