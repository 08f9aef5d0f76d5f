/**
 * What a hot reload makes stale: a licensing reload changes decisions at once but keeps the
 * decision cache's plans and the remembered client locations; a coverage-zone reload
 * relocates clients.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { stringify as toYaml } from 'yaml'
import { RELOAD_MAKES_STALE } from '../../control-plane/control-plane.ts'
import { fetchRaw } from '../helpers/http-client.ts'
import { eventually, startTestControlPlane, type TestControlPlane } from '../helpers/control-plane.ts'

const GB = '81.2.69.142'
const ISP = '100.64.1.1'

interface Explained {
  readonly node?: { readonly id: string }
  readonly reason?: string
  readonly explain: { readonly cache: string, readonly location: { readonly source: string, readonly group?: string } }
}

async function explained (cp: TestControlPlane, path: string, clientIp: string): Promise<{ status: number, body: Explained }> {
  const res = await fetchRaw(`${cp.cp.url}/v1/steer${path}?format=json`, { headers: { 'x-forwarded-for': clientIp } })
  return { status: res.status, body: JSON.parse(res.body.toString()) as Explained }
}

t.test('a licensing reload clears neither plans nor locations; zones and GeoIP reloads clear both', async (t) => {
  t.same(RELOAD_MAKES_STALE.licensing, { plans: false, locations: false })
  t.same(RELOAD_MAKES_STALE['coverage-zones'], { plans: true, locations: true })
  t.same(RELOAD_MAKES_STALE.geoip, { plans: true, locations: true })
  t.same(RELOAD_MAKES_STALE.nodes, { plans: true, locations: false }, 'the steering service catches inventory changes itself')
})

t.test('a licensing reload takes effect at once and keeps the cached plan', async (t) => {
  const cp = await startTestControlPlane(t)
  const path = '/vod/film/master.m3u8'
  t.equal((await explained(cp, path, GB)).body.explain.cache, 'miss')
  const before = await explained(cp, path, GB)
  t.equal(before.status, 200)
  t.equal(before.body.explain.cache, 'hit')
  const hitsBefore = await cp.cp.metrics.decisionCache.value({ result: 'hit' })

  await writeFile(cp.licensingFile, toYaml({ rules: [{ prefix: '/vod/film/', deny: ['GB'] }] }))
  // a write may be seen as more than one change (truncate, then data): wait for the new rules, not a count
  await eventually(async () => (await explained(cp, path, GB)).status === 451, 'the licensing reload')
  const denied = await explained(cp, path, GB)
  t.equal(denied.status, 451, 'the new rule applies to the next request')
  t.equal(denied.body.reason, 'country-denied')
  const other = await explained(cp, '/vod/film/other.m3u8', GB)
  t.equal(other.status, 451, 'to every path of the title')

  await writeFile(cp.licensingFile, toYaml({ rules: [] }))
  await eventually(async () => (await explained(cp, path, GB)).status === 200, 'the second licensing reload')
  const after = await explained(cp, path, GB)
  t.equal(after.status, 200)
  t.equal(after.body.explain.cache, 'hit', 'the plan built before both reloads is still used')
  t.ok(await cp.cp.metrics.decisionCache.value({ result: 'hit' }) > hitsBefore)
})

t.test('a coverage-zone reload relocates a client the control plane already located', async (t) => {
  const cp = await startTestControlPlane(t)
  const path = '/vod/film/master.m3u8'
  const inZone = await explained(cp, path, ISP)
  t.equal(inZone.body.explain.location.source, 'coverage-zone')
  t.equal(inZone.body.explain.location.group, 'isp-berlin')

  await writeFile(join(cp.dir, 'zones.json'), JSON.stringify({ coverageZones: { 'eu-west': { network: ['100.64.0.0/10'], country: 'GB' } } }))
  // the first answer that sees the new zones is also the first for its group order
  let moved: Explained | undefined
  await eventually(async () => {
    moved = (await explained(cp, path, ISP)).body
    return moved.explain.location.group === 'eu-west'
  }, 'the zones reload')
  t.equal(moved?.explain.location.group, 'eu-west', 'the remembered location was dropped')
  t.equal(moved?.explain.cache, 'miss', 'and so were the plans')
})
