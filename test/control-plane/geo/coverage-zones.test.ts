/**
 * Coverage zones (Traffic Control CZF format plus `country`): most specific prefix wins
 * across zones and families, and a file with mistakes is refused with every mistake named.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { isCdnError } from '../../../lib/errors.ts'
import { parseIp } from '../../../lib/net/ip-address.ts'
import { loadCoverageZones, parseCoverageZones } from '../../../control-plane/geo/coverage-zones.ts'
import { tempDir } from '../../helpers/cache-node.ts'

const CZF = {
  coverageZones: {
    'isp-wide': { network: ['100.64.0.0/10'], network6: ['2001:db8::/32'], country: 'DE' },
    'isp-berlin': { network: ['100.64.8.0/21', '192.0.2.0/24'], network6: ['2001:db8:100::/40'], country: 'DE', coordinates: { latitude: 52.52, longitude: 13.4 } },
    'isp-berlin-lab': { network: ['100.64.8.128/25'] },
  },
}

t.test('the longest prefix wins, in both families', async (t) => {
  const zones = parseCoverageZones(CZF)
  t.equal(zones.size, 6)
  const expect: Array<[string, string | undefined, string | undefined]> = [
    ['100.64.0.1', 'isp-wide', '100.64.0.0/10'],
    ['100.64.9.1', 'isp-berlin', '100.64.8.0/21'],
    ['100.64.8.200', 'isp-berlin-lab', '100.64.8.128/25'],
    ['192.0.2.77', 'isp-berlin', '192.0.2.0/24'],
    ['2001:db8:100::5', 'isp-berlin', '2001:db8:100::/40'],
    ['2001:db8:200::5', 'isp-wide', '2001:db8::/32'],
    ['198.51.100.1', undefined, undefined],
  ]
  for (const [ip, group, cidr] of expect) {
    const match = zones.lookup(parseIp(ip)!)
    t.equal(match?.zone.group, group, `${ip} → ${group ?? 'no zone'}`)
    t.equal(match?.cidr.text, cidr)
  }
  t.same(zones.lookup(parseIp('192.0.2.1')!)?.zone, { group: 'isp-berlin', country: 'DE', coordinates: { lat: 52.52, lon: 13.4 } })
})

t.test('mistakes are refused together, each naming its field', async (t) => {
  const bad = {
    coverageZones: {
      a: { network: ['10.0.0.0/8', '10.0.0.0/8', '2001:db8::/32', 'x'], network6: ['10.0.0.0/8'], country: 'de' },
      b: { network: '10.0.0.0/8', coordinates: { latitude: 91, longitude: 0 } },
      c: 'nope',
    },
  }
  try {
    parseCoverageZones(bad, 'Invalid coverage zones file z.json:')
    t.fail('should throw')
  } catch (err) {
    t.ok(isCdnError(err, 'CDN_ERR_CONFIG_INVALID'))
    const message = (err as Error).message
    for (const fragment of ['coverageZones.a.network[1]: 10.0.0.0/8 is listed twice', 'coverageZones.a.network[2] must be an IPv4 CIDR', 'coverageZones.a.network[3]', 'coverageZones.a.network6[0] must be an IPv6', 'coverageZones.a.country', 'coverageZones.b.network must be a list', 'coverageZones.b.coordinates', 'coverageZones.c must be']) {
      t.match(message, fragment)
    }
    t.ok(message.split('\n').every((line) => line.startsWith('Invalid coverage zones file z.json:')))
  }
  t.throws(() => parseCoverageZones({ zones: {} }), /coverageZones must be a mapping/)
})

t.test('files load as JSON or YAML', async (t) => {
  const dir = await tempDir(t)
  const json = join(dir, 'czf.json')
  const yaml = join(dir, 'czf.yaml')
  await writeFile(json, JSON.stringify(CZF))
  await writeFile(yaml, 'coverageZones:\n  isp: { network: [100.64.0.0/10], country: DE }\n')
  t.equal(loadCoverageZones(json).size, 6)
  t.equal(loadCoverageZones(yaml).lookup(parseIp('100.64.1.1')!)?.zone.group, 'isp')
  await writeFile(json, '{ "coverageZones": ')
  t.throws(() => loadCoverageZones(json), { code: 'CDN_ERR_CONFIG_FILE' })
  t.throws(() => loadCoverageZones(join(dir, 'missing.json')), { code: 'CDN_ERR_CONFIG_FILE' })
})
