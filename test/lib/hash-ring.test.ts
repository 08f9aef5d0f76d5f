/**
 * Rendezvous hashing: even spread, minimal movement when nodes come and go, weights,
 * and agreement between independently built rings (every edge must pick the same shield).
 */
import t from 'tap'
import { fnv1a32, HashRing } from '../../lib/hash-ring.ts'

const KEYS = Array.from({ length: 10_000 }, (_, i) => `/vod/title-${i % 97}/r${i % 5}/seg-${i}.ts`)

function ring (ids: readonly string[], weights: Readonly<Record<string, number>> = {}): HashRing<string> {
  return new HashRing(ids.map((id) => ({ id, value: id, ...(weights[id] === undefined ? {} : { weight: weights[id] }) })))
}

function owners (r: HashRing<string>): string[] {
  return KEYS.map((k) => r.pick(k)!)
}

function countBy (values: readonly string[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const v of values) out.set(v, (out.get(v) ?? 0) + 1)
  return out
}

const SHIELDS = ['http://shield-a:8081/', 'http://shield-b:8081/', 'http://shield-c:8081/']

t.test('10k keys over 3 shields: each within 10% of an even share', async (t) => {
  const counts = countBy(owners(ring(SHIELDS)))
  const even = KEYS.length / 3
  t.equal(counts.size, 3)
  for (const id of SHIELDS) {
    const n = counts.get(id) ?? 0
    t.ok(Math.abs(n - even) <= even * 0.1, `${id} holds ${n} keys (even: ${Math.round(even)})`)
  }
})

t.test('removing a shield remaps only its keys, each to its runner-up', async (t) => {
  const before = ring(SHIELDS)
  const after = ring([SHIELDS[0]!, SHIELDS[2]!])
  let moved = 0
  let wrong = 0
  for (const key of KEYS) {
    const [first, second] = before.rank(key)
    const now = after.pick(key)
    if (first === SHIELDS[1]) {
      moved++
      if (now !== second) wrong++
    } else if (now !== first) {
      wrong++
    }
  }
  t.equal(wrong, 0, 'keys of the remaining shields stay put; the removed shield\'s keys go to their second choice')
  t.ok(moved > 0, `${moved} keys moved`)
})

t.test('adding a shield moves about 1/n of the keys, all of them to the new shield', async (t) => {
  const before = owners(ring(SHIELDS))
  const fourth = 'http://shield-d:8081/'
  const after = owners(ring([...SHIELDS, fourth]))
  let moved = 0
  for (let i = 0; i < KEYS.length; i++) {
    if (before[i] === after[i]) continue
    moved++
    if (after[i] !== fourth) t.fail(`${KEYS[i]} moved between old shields`)
  }
  const share = moved / KEYS.length
  t.ok(Math.abs(share - 0.25) <= 0.03, `moved ${(share * 100).toFixed(1)}% of keys (expected about 25%)`)
})

t.test('weights set the share of keys', async (t) => {
  const counts = countBy(owners(ring(SHIELDS, { [SHIELDS[0]!]: 2 })))
  const a = (counts.get(SHIELDS[0]!) ?? 0) / KEYS.length
  t.ok(Math.abs(a - 0.5) <= 0.03, `weight 2 of 4 holds ${(a * 100).toFixed(1)}% (expected 50%)`)
  for (const id of SHIELDS.slice(1)) {
    const share = (counts.get(id) ?? 0) / KEYS.length
    t.ok(Math.abs(share - 0.25) <= 0.03, `${id} holds ${(share * 100).toFixed(1)}% (expected 25%)`)
  }
})

t.test('weighted rings also move only the removed node\'s keys', async (t) => {
  const weights = { [SHIELDS[0]!]: 3, [SHIELDS[1]!]: 1, [SHIELDS[2]!]: 2 }
  const before = ring(SHIELDS, weights)
  const after = ring([SHIELDS[0]!, SHIELDS[1]!], weights)
  let wrong = 0
  for (const key of KEYS) {
    const was = before.pick(key)
    if (was !== SHIELDS[2] && after.pick(key) !== was) wrong++
  }
  t.equal(wrong, 0)
})

t.test('rings built in a different order, or in another process, agree on every key', async (t) => {
  const a = ring(SHIELDS)
  const b = ring([...SHIELDS].reverse())
  let disagree = 0
  for (const key of KEYS) if (a.rank(key).join() !== b.rank(key).join()) disagree++
  t.equal(disagree, 0)
  // Pinned values: a change of hash function would silently reshuffle every deployed edge's shield choice.
  t.equal(fnv1a32(''), 0x811c9dc5)
  t.equal(fnv1a32('a'), 0xe40c292c)
  t.equal(fnv1a32('foobar'), 0xbf9cf968)
  t.same(a.rank('/vod/bars/360p/seg-0.m4s'), a.rank('/vod/bars/360p/seg-0.m4s'), 'stable across calls')
})

t.test('rank lists every node once; pick is the first; an empty ring picks nothing', async (t) => {
  const r = ring(SHIELDS)
  let bad = 0
  for (const key of KEYS.slice(0, 500)) {
    const ranked = r.rank(key)
    if ([...ranked].sort().join() !== [...SHIELDS].sort().join() || r.pick(key) !== ranked[0]) bad++
  }
  t.equal(bad, 0, 'every ranking is a permutation led by pick()')
  const empty = new HashRing<string>([])
  t.same(empty.rank('/x'), [])
  t.equal(empty.pick('/x'), undefined)
  t.equal(r.size, 3)
  t.same(r.ids, SHIELDS)
})

t.test('the order of the runners-up is spread too (failover load is shared)', async (t) => {
  const r = ring(SHIELDS)
  const seconds = countBy(KEYS.filter((k) => r.pick(k) === SHIELDS[0]).map((k) => r.rank(k)[1]!))
  const b = seconds.get(SHIELDS[1]!) ?? 0
  const c = seconds.get(SHIELDS[2]!) ?? 0
  t.ok(Math.abs(b - c) <= (b + c) * 0.1, `when A fails its keys go to B (${b}) and C (${c}) about equally`)
})

t.test('bad nodes are refused with a TypeError naming the field', async (t) => {
  t.throws(() => new HashRing([{ id: 'a', value: 1 }, { id: 'a', value: 2 }]), { name: 'TypeError', message: /unique.*"a"/ })
  t.throws(() => new HashRing([{ id: '', value: 1 }]), { name: 'TypeError', message: /nodes\[0\]\.id/ })
  t.throws(() => new HashRing([{ id: 'a', value: 1, weight: 0 }]), { name: 'TypeError', message: 'Expected nodes[0].weight to be a positive finite number, got 0' })
  t.throws(() => new HashRing([{ id: 'a', value: 1, weight: Number.NaN }]), { name: 'TypeError' })
})
