/**
 * GeoIP fixture databases in both schemas the control plane reads, written with the test MMDB
 * writer into a temp directory: a MaxMind GeoIP2-City-shaped file (one IPv6 tree holding IPv4
 * and IPv6 networks) and a DB-IP (ip-location-db) pair, one file per IP version.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { writeMmdb, type MmdbEntry } from './mmdb-writer.ts'

/** One fixture place. */
export interface FixturePlace {
  readonly network: string
  readonly country: string
  readonly city: string | undefined
  readonly lat: number
  readonly lon: number
  /** An address inside the network. */
  readonly probe: string
}

/** The places every fixture database knows. */
export const FIXTURE_PLACES: readonly FixturePlace[] = [
  { network: '81.2.69.0/24', country: 'GB', city: 'London', lat: 51.5142, lon: -0.0931, probe: '81.2.69.142' },
  { network: '2.125.160.0/20', country: 'DE', city: 'Frankfurt am Main', lat: 50.1109, lon: 8.6821, probe: '2.125.160.216' },
  { network: '216.160.83.0/24', country: 'US', city: 'Ashburn', lat: 39.0438, lon: -77.4874, probe: '216.160.83.56' },
  { network: '175.16.199.0/24', country: 'JP', city: 'Tokyo', lat: 35.6895, lon: 139.6917, probe: '175.16.199.10' },
  { network: '89.160.20.0/24', country: 'SE', city: 'Linköping', lat: 58.4167, lon: 15.6167, probe: '89.160.20.112' },
  { network: '41.0.0.0/16', country: 'ZA', city: undefined, lat: -29, lon: 24, probe: '41.0.7.7' },
  { network: '2001:db8:de::/48', country: 'DE', city: 'Berlin', lat: 52.52, lon: 13.405, probe: '2001:db8:de::1' },
  { network: '2001:db8:5::/48', country: 'US', city: 'Seattle', lat: 47.6062, lon: -122.3321, probe: '2001:db8:5:1::77' },
]

/** A GeoIP2-City record (the MaxMind schema). */
export function maxmindRecord (p: FixturePlace): MmdbEntry['record'] {
  return {
    ...(p.city === undefined ? {} : { city: { geoname_id: 1, names: { en: p.city } } }),
    continent: { code: 'EU', names: { en: 'Somewhere' } },
    country: { geoname_id: 2, iso_code: p.country, names: { en: p.country } },
    location: { accuracy_radius: 10, latitude: p.lat, longitude: p.lon, time_zone: 'UTC' },
  }
}

/** An ip-location-db record (the embedded DB-IP schema). */
export function dbipRecord (p: FixturePlace): MmdbEntry['record'] {
  return { country_code: p.country, state1: '', state2: '', city: p.city ?? '', postcode: '', latitude: p.lat, longitude: p.lon, timezone: '' }
}

/** Writes `GeoIP2-City-Test.mmdb` into `dir`; returns its path. */
export async function writeMaxmindFixture (dir: string, places: readonly FixturePlace[] = FIXTURE_PLACES, name = 'GeoIP2-City-Test.mmdb'): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, writeMmdb({ ipVersion: 6, databaseType: 'GeoIP2-City', entries: places.map((p) => ({ network: p.network, record: maxmindRecord(p) })) }))
  return file
}

/** Writes the DB-IP pair into `dir`; returns [ipv4 file, ipv6 file]. */
export async function writeDbipFixture (dir: string, places: readonly FixturePlace[] = FIXTURE_PLACES): Promise<[string, string]> {
  const v4 = join(dir, 'dbip-city-ipv4.mmdb')
  const v6 = join(dir, 'dbip-city-ipv6.mmdb')
  const isV6 = (p: FixturePlace): boolean => p.network.includes(':')
  await writeFile(v4, writeMmdb({ ipVersion: 4, databaseType: 'city ipv4', entries: places.filter((p) => !isV6(p)).map((p) => ({ network: p.network, record: dbipRecord(p) })) }))
  await writeFile(v6, writeMmdb({ ipVersion: 6, databaseType: 'city ipv6', entries: places.filter(isV6).map((p) => ({ network: p.network, record: dbipRecord(p) })) }))
  return [v4, v6]
}
