/**
 * The title a path belongs to (the token ACL and the rendezvous key), and locations
 * remembered per client address until the data behind them changes; licensing decided per
 * request for the path, a file at the root included.
 */
import t from 'tap'
import { parseCoverageZones } from '../../../control-plane/geo/coverage-zones.ts'
import { parseInventory } from '../../../control-plane/health/node-inventory.ts'
import { parseLicensingRules } from '../../../control-plane/licensing/licensing-rules.ts'
import { titleOf } from '../../../control-plane/steering/steering-service.ts'
import { client, groupOf, steeringFixture, TWO_GROUPS } from './fixture.ts'

t.test('the directory of the requested file, never the whole site', async (t) => {
  t.equal(titleOf('/vod/bbb/master.m3u8'), '/vod/bbb/')
  t.equal(titleOf('/live/ch1/index.m3u8'), '/live/ch1/')
  t.equal(titleOf('/vod/a/b/c/master.m3u8'), '/vod/a/b/c/')
  t.equal(titleOf('/master.m3u8'), '/master.m3u8', 'a file at the root gets a token for itself alone')
  t.equal(titleOf('/vod/bbb/'), '/vod/bbb/')
})

t.test('a client address is located once until invalidate(), and a reload moves it', async (t) => {
  const fx = steeringFixture(t, { zones: { coverageZones: { a: { network: ['198.51.100.0/24'] } } }, unknownGroup: 'a' })
  const { steering } = fx
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))), 'a')
  t.equal(groupOf(steering.steerNow('/vod/y/master.m3u8', client('198.51.100.7'))), 'a')
  t.equal(fx.zoneLookups, 1, 'the second request from the address reused its location')
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('198.51.100.8'))), 'a')
  t.equal(fx.zoneLookups, 2, 'another address is located on its own')
  fx.zones = parseCoverageZones({ coverageZones: { b: { network: ['198.51.100.0/24'] } } })
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))), 'a', 'until invalidated, the remembered location stands')
  steering.invalidate()
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))), 'b', 'after a reload the address locates anew')
  t.equal(fx.zoneLookups, 3)
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', undefined)), 'a', 'an unusable peer gets the unknown policy')
})

t.test('a remembered client follows an inventory change without invalidate(); IPv6 clients are remembered too', async (t) => {
  const fx = steeringFixture(t, { zones: { coverageZones: { a: { network: ['198.51.100.0/24'], network6: ['2001:db8::/32'] } } }, unknownGroup: 'b' })
  const { steering } = fx
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))), 'a')
  t.equal(groupOf(steering.steerNow('/vod/x/master.m3u8', client('2001:db8::7'))), 'a')
  t.equal(groupOf(steering.steerNow('/vod/y/master.m3u8', client('2001:DB8:0::7'))), 'a', 'the same IPv6 address written another way')
  t.equal(fx.zoneLookups, 2, 'each address located once')
  // group a's only edge moves to a new group: the remembered location stands, its group order does not
  fx.setInventory(parseInventory({ nodes: [{ ...TWO_GROUPS[0], group: 'c' }, TWO_GROUPS[1]] }))
  const moved = steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))
  t.equal(groupOf(moved), 'c', 'group a is gone: the order is rebuilt (a stale one would skip the empty a for b)')
  t.equal(fx.zoneLookups, 2, 'the location was still remembered')
  const same = steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))
  t.equal(groupOf(same), groupOf(moved), 'and the new order is remembered in turn')
})

t.test('licensing is decided for the requested path, in its title and at the root', async (t) => {
  const licensing = parseLicensingRules({ rules: [{ prefix: '/vod/dach/', allow: ['DE'] }, { prefix: '/x.m3u8', deny: ['DE'] }] })
  const fx = steeringFixture(t, { zones: { coverageZones: { a: { network: ['198.51.100.0/24'], country: 'DE' } } }, unknownGroup: 'b', licensing })
  const outcome = (path: string, ip: string): string => {
    const d = fx.steering.steerNow(path, client(ip))
    return d.kind === 'denied-licence' ? `${d.kind}:${d.reason}:${d.rule}` : groupOf(d)
  }
  t.equal(outcome('/vod/dach/film/master.m3u8', '198.51.100.7'), 'a', 'DE may play it')
  t.equal(outcome('/vod/dach/film/seg-1.ts', '198.51.100.7'), 'a', 'and every file of the title')
  t.equal(outcome('/vod/dach/film/master.m3u8', '203.0.113.9'), 'denied-licence:unknown-location:/vod/dach/', 'nobody knows where this one is')
  t.equal(outcome('/x.m3u8', '198.51.100.7'), 'denied-licence:country-denied:/x.m3u8', 'a root file: its title is itself, the rule is exact')
  t.equal(outcome('/y.m3u8', '198.51.100.7'), 'a', 'its neighbour is not covered')
})

t.test('the 302 path counts the edges it passed over; the explained path lists them', async (t) => {
  const fx = steeringFixture(t, { zones: { coverageZones: { a: { network: ['198.51.100.0/24'] } } }, unknownGroup: 'a' })
  fx.health.recordProbe(TWO_GROUPS[0]!.id, false) // group a's only edge is down: the pick moves on to b
  const quick = fx.steering.steerNow('/vod/x/master.m3u8', client('198.51.100.7'))
  const explained = await fx.steering.steer('/vod/x/master.m3u8', client('198.51.100.7'))
  t.equal(groupOf(quick), 'b')
  t.equal(groupOf(explained), 'b')
  if (quick.kind !== 'redirect' || explained.kind !== 'redirect') throw new Error('expected redirects')
  t.equal(quick.explain.skipped, 1, 'the down edge, counted')
  t.same(quick.explain.candidates, [], 'and not listed')
  t.equal(explained.explain.skipped, 1)
  t.match(explained.explain.candidates, [{ node: TWO_GROUPS[0]!.id, verdict: 'down' }, { node: TWO_GROUPS[1]!.id, verdict: 'chosen' }], 'listed with why')
})

t.test('a token never opens a path the client may not play: it names the steered file alone when its title holds one', async (t) => {
  const licensing = parseLicensingRules({ rules: [{ prefix: '/vod/dach/', allow: ['DE'] }, { prefix: '/vod/t/extra.m3u8', deny: ['DE'] }, { prefix: '/vod/u/', deny: ['DE'] }, { prefix: '/vod/u/free.m3u8', allow: ['DE'] }] })
  const fx = steeringFixture(t, { zones: { coverageZones: { a: { network: ['198.51.100.0/24'], country: 'DE' }, b: { network: ['192.0.2.0/24'], country: 'FR' } } }, unknownGroup: 'b', licensing })
  const scope = (path: string, ip: string): string | undefined => {
    const d = fx.steering.steerNow(path, client(ip))
    if (d.kind !== 'redirect') return d.kind
    t.equal(d.explain.licence.tokenScope, d.claims.path === d.explain.title ? undefined : d.claims.path, `${path}: the explanation names a narrowed scope`)
    return d.claims.path
  }
  t.equal(scope('/vod/index.m3u8', '192.0.2.1'), '/vod/index.m3u8', 'FR steering a file in /vod/: /vod/dach/ below refuses FR, so not /vod/')
  t.equal(scope('/vod/index.m3u8', '198.51.100.1'), '/vod/index.m3u8', 'DE: /vod/u/ below refuses it')
  t.equal(scope('/vod/dach/index.m3u8', '198.51.100.1'), '/vod/dach/', 'DE: every rule in and over /vod/dach/ lets it in, the whole directory')
  t.equal(scope('/vod/t/master.m3u8', '198.51.100.1'), '/vod/t/master.m3u8', 'one file of the title refuses DE')
  t.equal(scope('/vod/t/master.m3u8', '192.0.2.1'), '/vod/t/', 'that file lets FR in')
  t.equal(scope('/vod/u/free.m3u8', '198.51.100.1'), '/vod/u/free.m3u8', 'a file allowed by its own rule, in a directory that refuses DE')
  t.equal(scope('/vod/dach/film/master.m3u8', '198.51.100.1'), '/vod/dach/film/', 'an ordinary licensed title')
  const again = fx.steering.steerNow('/vod/index.m3u8', client('192.0.2.2'))
  t.equal(again.kind === 'redirect' ? again.claims.path : again.kind, '/vod/index.m3u8', 'a reused token keeps the narrow scope')
})

t.test('a token does not outlive the licence window of any rule it reaches', async (t) => {
  const untilMs = Date.now() + 120_000 // inside the fixture's 600 s token lifetime
  const licensing = parseLicensingRules({ rules: [{ prefix: '/vod/w/', until: new Date(untilMs).toISOString() }, { prefix: '/vod/z/inner/', until: new Date(untilMs).toISOString() }] })
  const fx = steeringFixture(t, { zones: { coverageZones: { a: { network: ['198.51.100.0/24'], country: 'DE' } } }, unknownGroup: 'a', licensing })
  const exp = (path: string): number => {
    const d = fx.steering.steerNow(path, client('198.51.100.1'))
    return d.kind === 'redirect' ? d.claims.exp : -1
  }
  t.equal(exp('/vod/w/master.m3u8'), Math.floor(untilMs / 1000), 'the title\'s own window')
  t.equal(exp('/vod/z/master.m3u8'), Math.floor(untilMs / 1000), 'a window below the title')
  t.ok(exp('/vod/other/master.m3u8') >= Math.floor(Date.now() / 1000) + 600, 'elsewhere, the full lifetime')
})
