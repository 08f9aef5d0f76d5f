/**
 * Licensing rules: most specific prefix, allow and deny lists, validity windows, the
 * unknown-location policy and its default, and files with mistakes.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { LicensingRules, loadLicensingRules, parseLicensingRules } from '../../../control-plane/licensing/licensing-rules.ts'
import { tempDir } from '../../helpers/cache-node.ts'

const JAN_2026 = Date.parse('2026-01-01T00:00:00Z')
const rules = parseLicensingRules({
  rules: [
    { prefix: '/vod/', deny: ['KP'], unknown: 'allow' },
    { prefix: '/vod/dach/', allow: ['DE', 'AT', 'CH'] },
    { prefix: '/vod/dach/trailer', unknown: 'allow' },
    { prefix: '/vod/window/', from: '2026-01-01T00:00:00Z', until: '2026-02-01T00:00:00Z', allow: ['FR'], deny: ['FR'] },
    { prefix: '/live', allow: ['US'], unknown: 'allow' },
  ],
})

t.test('the most specific prefix decides, segment-aware', async (t) => {
  t.equal(rules.match('/vod/dach/film/master.m3u8')?.prefix, '/vod/dach/')
  t.equal(rules.match('/vod/dach/trailer/seg.ts')?.prefix, '/vod/dach/trailer')
  t.equal(rules.match('/vod/dach/trailers/seg.ts')?.prefix, '/vod/dach/', '/vod/dach/trailer does not cover /vod/dach/trailers')
  t.equal(rules.match('/vod/other/x.ts')?.prefix, '/vod/')
  t.equal(rules.match('/live/ch1/index.m3u8')?.prefix, '/live')
  t.equal(rules.match('/livestream/x')?.prefix, undefined)
  t.equal(rules.match('/music/x.mp3'), undefined)
})

t.test('a directory the caller already holds gives the same answers, and a wrong one is ignored', async (t) => {
  const paths = ['/vod/dach/film/master.m3u8', '/vod/dach/trailer/seg.ts', '/vod/dach/trailers/seg.ts', '/vod/other/x.ts', '/live/ch1/index.m3u8', '/livestream/x', '/vod/dach/trailer', '/music/x.mp3', '/x.m3u8']
  for (const path of paths) {
    const fresh = parseLicensingRules({ rules: [...['/vod/', '/vod/dach/', '/vod/dach/trailer', '/live'].map((prefix) => ({ prefix }))] })
    const directory = path.slice(0, path.lastIndexOf('/') + 1)
    t.equal(fresh.match(path, directory)?.prefix, rules.match(path)?.prefix, `${path} with ${directory}`)
    t.equal(fresh.match(path)?.prefix, rules.match(path)?.prefix, `${path} again without, from the memo`)
  }
  // a directory that is not the path's own (a stale or wrong title) must not pick the rule
  const strict = parseLicensingRules({ rules: [{ prefix: '/vod/dach/', allow: ['DE'] }] })
  t.equal(strict.evaluate('/vod/free/a.ts', 'FR', JAN_2026, '/vod/dach/').allowed, true, 'a directory of another path')
  t.equal(strict.evaluate('/vod/dach/a.ts', 'FR', JAN_2026, '/vod/free/').allowed, false, 'the same length, other characters')
  t.equal(strict.evaluate('/vod/dach/a.ts', 'FR', JAN_2026, '/vod/').allowed, false, 'an ancestor')
  t.equal(strict.evaluate('/vod/dach/a.ts', 'FR', JAN_2026, '/vod/dach/a.ts').allowed, false, 'the path itself (a root file\'s title)')
  t.equal(strict.match('/vod/dach/b.ts')?.prefix, '/vod/dach/', 'and the memo holds the right rule under the right key')
  t.equal(strict.match('/vod/free/b.ts'), undefined)
})

t.test('allow and deny lists, windows and unknown locations', async (t) => {
  const cases: Array<[string, string | undefined, number, boolean, string | undefined]> = [
    ['/vod/dach/film/a.ts', 'DE', JAN_2026, true, undefined],
    ['/vod/dach/film/a.ts', 'FR', JAN_2026, false, 'country-not-allowed'],
    ['/vod/dach/film/a.ts', undefined, JAN_2026, false, 'unknown-location'],
    ['/vod/dach/trailer/a.ts', undefined, JAN_2026, true, undefined],
    ['/vod/other/a.ts', 'KP', JAN_2026, false, 'country-denied'],
    ['/vod/other/a.ts', 'FR', JAN_2026, true, undefined],
    ['/vod/other/a.ts', undefined, JAN_2026, true, undefined],
    ['/vod/window/a.ts', 'FR', JAN_2026 - 1, false, 'not-yet-available'],
    ['/vod/window/a.ts', 'FR', JAN_2026, false, 'country-denied'],
    ['/vod/window/a.ts', 'DE', JAN_2026 + 1000, false, 'country-not-allowed'],
    ['/vod/window/a.ts', 'FR', Date.parse('2026-02-01T00:00:00Z'), false, 'expired'],
    ['/vod/window/a.ts', undefined, JAN_2026, false, 'unknown-location'],
    ['/live/a.ts', undefined, JAN_2026, true, undefined],
    ['/music/a.mp3', undefined, JAN_2026, true, undefined],
  ]
  for (const [path, country, now, allowed, reason] of cases) {
    const decision = rules.evaluate(path, country, now)
    t.equal(decision.allowed, allowed, `${path} ${country ?? '??'} → ${allowed ? 'allowed' : reason}`)
    if (!decision.allowed) t.equal(decision.reason, reason)
  }
})

t.test('unknown defaults to deny for rules that list countries, allow otherwise', async (t) => {
  const r = parseLicensingRules({ rules: [{ prefix: '/a/', allow: ['DE'] }, { prefix: '/b/', deny: ['DE'] }, { prefix: '/c/', until: '2030-01-01T00:00:00Z' }] })
  t.equal(r.match('/a/x')?.unknown, 'deny')
  t.equal(r.match('/b/x')?.unknown, 'deny')
  t.equal(r.match('/c/x')?.unknown, 'allow')
})

t.test('mistakes are refused together', async (t) => {
  const bad = { rules: [{ prefix: 'vod/' }, { prefix: '/a/', allow: ['de'], unknown: 'maybe', colour: 'red' }, { prefix: '/b/', from: '2026-02-01T00:00:00Z', until: '2026-01-01T00:00:00Z' }, { prefix: '/b/' }, { prefix: '/c/', from: 'soon' }] }
  try {
    parseLicensingRules(bad)
    t.fail('should throw')
  } catch (err) {
    const message = (err as Error).message
    for (const fragment of ['rules[0].prefix', 'rules[1].allow', 'rules[1].unknown must be allow or deny', 'rules[1].colour is not a rule field', 'rules[2].until must be after', 'rules[3].prefix /b/ is listed twice', 'rules[4].from must be an ISO 8601']) t.match(message, fragment)
  }
  t.throws(() => parseLicensingRules({ rule: [] }), /rules must be a list/)
})

t.test('YAML files load (timestamps included)', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'licensing.yaml')
  await writeFile(file, 'rules:\n  - prefix: /vod/x/\n    allow: [DE]\n    from: 2026-01-01T00:00:00Z\n')
  const loaded = loadLicensingRules(file)
  t.equal(loaded.evaluate('/vod/x/a.ts', 'DE', JAN_2026 - 1).allowed, false)
  t.equal(loaded.evaluate('/vod/x/a.ts', 'DE', JAN_2026).allowed, true)
  const example = loadLicensingRules(new URL('../../../config/examples/control-plane/licensing.yaml', import.meta.url).pathname)
  t.ok(example.size >= 3, 'the example file loads')
})

t.test('remembered directories answer as a fresh scan does, asked once or many times', async (t) => {
  const prefixes = ['/', '/vod/', '/vod/a', '/vod/a/master.m3u8', '/vod/b/', '/vod/b/c/', '/x/y.ts', '/deep/1/2/3/']
  const set = parseLicensingRules({ rules: prefixes.map((prefix) => ({ prefix })) })
  const noRoot = parseLicensingRules({ rules: prefixes.filter((p) => p !== '/').map((prefix) => ({ prefix })) })
  // the definition: the exact path, then each ancestor with and without its trailing slash
  const reference = (all: readonly string[], path: string): string | undefined => {
    if (all.includes(path)) return path
    for (let i = path.lastIndexOf('/'); i >= 0; i = path.lastIndexOf('/', i - 1)) {
      if (all.includes(path.slice(0, i + 1))) return path.slice(0, i + 1)
      if (i > 0 && all.includes(path.slice(0, i))) return path.slice(0, i)
      if (i === 0) break
    }
    return undefined
  }
  const paths = [
    '/vod/a/master.m3u8', '/vod/a/other.m3u8', '/vod/a/', '/vod/a', '/vod/ab/x.ts', '/vod/b/c/d/e.ts', '/vod/b/c', '/vod/b/x',
    '/x/y.ts', '/x/y.tsx', '/x/z.ts', '/deep/1/2/3/4/5.ts', '/deep/1/2/x.ts', '/', '/file.m3u8', 'no-slash', '', '/vod/', '/vod',
  ]
  for (const round of [1, 2, 3]) {
    for (const path of paths) {
      t.equal(set.match(path)?.prefix, reference(prefixes, path), `round ${round}: ${JSON.stringify(path)}`)
      t.equal(noRoot.match(path)?.prefix, reference(prefixes.filter((p) => p !== '/'), path), `round ${round}, no root rule: ${JSON.stringify(path)}`)
    }
  }
})

t.test('tokenReach: whole only when every rule in or over the title lets the client in now; the earliest window end', async (t) => {
  const now = Date.parse('2026-06-01T00:00:00Z')
  const rules = parseLicensingRules({
    rules: [
      { prefix: '/vod/dach/', allow: ['DE'] },
      { prefix: '/vod/dach/late/', from: '2026-07-01T00:00:00Z' },
      { prefix: '/vod/a', until: '2026-06-02T00:00:00Z' },
      { prefix: '/vod/ab/', until: '2026-06-01T12:00:00Z' },
      { prefix: '/root.m3u8', deny: ['FR'] },
    ],
  })
  t.same(rules.tokenReach('/vod/', 'FR', now), { whole: false, untilMs: undefined }, '/vod/dach/ below refuses FR')
  t.same(rules.tokenReach('/vod/dach/', 'DE', now), { whole: false, untilMs: undefined }, '/vod/dach/late/ is not open yet')
  t.same(rules.tokenReach('/vod/dach/film/', 'DE', now), { whole: true, untilMs: undefined }, 'the covering rule lets DE in')
  t.same(rules.tokenReach('/vod/dach/film/', 'FR', now), { whole: false, untilMs: undefined }, 'and not FR')
  t.same(rules.tokenReach('/vod/a/', 'FR', now), { whole: true, untilMs: Date.parse('2026-06-02T00:00:00Z') }, 'segment-aware: /vod/ab/ is not inside /vod/a')
  t.same(rules.tokenReach('/vod/ab/x/', 'FR', now), { whole: true, untilMs: Date.parse('2026-06-01T12:00:00Z') })
  t.same(rules.tokenReach('/root.m3u8', 'DE', now), { whole: true, untilMs: undefined }, 'a root file is its own title')
  t.same(rules.tokenReach('/root.m3u8', 'FR', now), { whole: false, untilMs: undefined })
  t.same(LicensingRules.empty().tokenReach('/vod/', undefined, now), { whole: true, untilMs: undefined })
})
