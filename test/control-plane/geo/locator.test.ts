/**
 * Locating clients: coverage zones first (with the zone's country, else GeoIP's), then GeoIP,
 * then the unknown-location policy; the prefix key groups clients that locate alike.
 */
import t from 'tap'
import { parseIp } from '../../../lib/net/ip-address.ts'
import { parseCoverageZones } from '../../../control-plane/geo/coverage-zones.ts'
import { GeoIpDatabase } from '../../../control-plane/geo/geoip.ts'
import { Locator } from '../../../control-plane/geo/locator.ts'
import { tempDir } from '../../helpers/cache-node.ts'
import { writeMaxmindFixture } from '../../helpers/geo-fixtures.ts'

t.test('zones, then GeoIP, then the unknown policy', async (t) => {
  const dir = await tempDir(t)
  const geoip = await GeoIpDatabase.open({ files: [await writeMaxmindFixture(dir)] })
  t.teardown(() => geoip.close())
  const zones = parseCoverageZones({
    coverageZones: {
      'isp-london': { network: ['81.2.69.128/25'] },
      'isp-cgnat': { network: ['100.64.0.0/10'], country: 'DE', coordinates: { latitude: 52.5, longitude: 13.4 } },
    },
  })
  const locator = new Locator({ zones: () => zones, geoip, unknown: { kind: 'default-group', group: 'eu-central' } })
  t.same(locator.locate(parseIp('81.2.69.200')!), { source: 'coverage-zone', group: 'isp-london', country: 'GB', prefixKey: 'z:81.2.69.128/25', network: '81.2.69.128/25' }, 'zone hit, country from GeoIP')
  t.same(locator.locate(parseIp('100.70.1.2')!), { source: 'coverage-zone', group: 'isp-cgnat', point: { lat: 52.5, lon: 13.4 }, country: 'DE', prefixKey: 'z:100.64.0.0/10', network: '100.64.0.0/10' }, 'zone country where GeoIP knows nothing')
  t.same(locator.locate(parseIp('81.2.69.5')!), { source: 'geoip', point: { lat: 51.5142, lon: -0.0931 }, country: 'GB', city: 'London', precision: 'city', prefixKey: 'g:51024500/24', network: '81.2.69.0/24' })
  t.equal(locator.locate(parseIp('81.2.69.6')!).prefixKey, locator.locate(parseIp('81.2.69.99')!).prefixKey, 'one GeoIP network, one key')
  t.same(locator.locate(parseIp('10.0.0.1')!), { source: 'unknown', group: 'eu-central', prefixKey: 'u' })
  t.same(new Locator({ zones: () => zones, geoip, unknown: { kind: 'nearest-point', point: { lat: 1, lon: 2 } } }).locate(parseIp('10.0.0.1')!), { source: 'unknown', point: { lat: 1, lon: 2 }, prefixKey: 'u' })
  t.same(new Locator({ zones: () => zones, geoip: undefined, unknown: { kind: 'deny' } }).locate(parseIp('81.2.69.5')!), { source: 'unknown', prefixKey: 'u', denied: true }, 'no GeoIP database: unknown')
})
