/**
 * Coverage zones: client prefixes → cache group, for ISP-hosted appliances that must serve
 * their own subscribers first (Traffic Router's Coverage Zone File, Open Connect's
 * announced prefixes). The most specific prefix wins, across IPv4 and IPv6.
 *
 * The file is Traffic Control's CZF format, plus an optional `country` so licensing still
 * knows where a zone's subscribers are (a CZF hit must not skip the country check, as it does
 * in Traffic Router):
 *
 *   { "coverageZones": { "isp-berlin": { "network": ["100.64.0.0/10"], "network6": ["2001:db8:100::/40"],
 *                                        "country": "DE", "coordinates": { "latitude": 52.52, "longitude": 13.40 } } } }
 */
import { parseCidr, type Cidr, type IpAddress } from '../../lib/net/ip-address.ts'
import { PrefixTable } from '../../lib/net/prefix-table.ts'
import { isRecord, Problems, readDataFile } from '../data-file.ts'

/** One zone: the group it sends clients to, and what it says about them. */
export interface CoverageZone {
  /** Cache group id (must exist in the node inventory). */
  readonly group: string
  /** ISO 3166-1 alpha-2 country of the zone's subscribers. */
  readonly country?: string
  /** Where the zone is, for "nearest group" fallbacks when its own group is down. */
  readonly coordinates?: { readonly lat: number, readonly lon: number }
}

/** A zone match: the zone and the prefix that matched. */
export interface ZoneMatch {
  readonly zone: CoverageZone
  readonly cidr: Cidr
}

/** The loaded zones. */
export class CoverageZones {
  readonly #table: PrefixTable<CoverageZone>
  readonly groups: readonly string[]

  constructor (table: PrefixTable<CoverageZone>, groups: readonly string[]) {
    this.#table = table
    this.groups = groups
  }

  /** No zones at all. */
  static empty (): CoverageZones {
    return new CoverageZones(new PrefixTable(), [])
  }

  /** Number of prefixes. */
  get size (): number {
    return this.#table.size
  }

  /** The zone of the longest prefix containing `ip`. */
  lookup (ip: IpAddress): ZoneMatch | undefined {
    const found = this.#table.lookup(ip)
    return found === undefined ? undefined : { zone: found.value, cidr: found.cidr }
  }
}

/** Reads and validates a coverage zone file. */
export function loadCoverageZones (path: string): CoverageZones {
  return parseCoverageZones(readDataFile(path, 'coverage zones'), `Invalid coverage zones file ${path}:`)
}

/** Validates decoded coverage-zone data; every problem is reported at once. */
export function parseCoverageZones (data: unknown, prefix = 'Invalid coverage zones:'): CoverageZones {
  const problems = new Problems(prefix)
  const table = new PrefixTable<CoverageZone>()
  const groups: string[] = []
  const zones = isRecord(data) ? data['coverageZones'] : undefined
  if (!isRecord(zones)) {
    problems.add('coverageZones', 'a mapping of cache group to networks', zones)
    problems.throwIfAny()
    return new CoverageZones(table, groups)
  }
  for (const [group, entry] of Object.entries(zones)) {
    const field = `coverageZones.${group}`
    if (!isRecord(entry)) {
      problems.add(field, 'a mapping with network and/or network6 lists', entry)
      continue
    }
    const zone = parseZone(group, entry, field, problems)
    groups.push(group)
    for (const key of ['network', 'network6'] as const) {
      const list = entry[key] ?? []
      if (!Array.isArray(list)) {
        problems.add(`${field}.${key}`, 'a list of CIDR prefixes', list)
        continue
      }
      list.forEach((text: unknown, i) => {
        const cidr = typeof text === 'string' ? parseCidr(text) : undefined
        if (cidr === undefined || (key === 'network') !== (cidr.version === 4)) {
          problems.add(`${field}.${key}[${i}]`, key === 'network' ? 'an IPv4 CIDR prefix' : 'an IPv6 CIDR prefix', text)
          return
        }
        if (!table.add(cidr, zone)) problems.note(`${field}.${key}[${i}]: ${cidr.text} is listed twice`)
      })
    }
  }
  problems.throwIfAny()
  return new CoverageZones(table, groups)
}

function parseZone (group: string, entry: Record<string, unknown>, field: string, problems: Problems): CoverageZone {
  const country = entry['country']
  if (country !== undefined && (typeof country !== 'string' || !/^[A-Z]{2}$/.test(country))) {
    problems.add(`${field}.country`, 'an ISO 3166-1 alpha-2 code in capitals', country)
  }
  const coords = entry['coordinates']
  let coordinates: CoverageZone['coordinates']
  if (coords !== undefined) {
    const lat = isRecord(coords) ? coords['latitude'] : undefined
    const lon = isRecord(coords) ? coords['longitude'] : undefined
    if (typeof lat !== 'number' || lat < -90 || lat > 90 || typeof lon !== 'number' || lon < -180 || lon > 180) {
      problems.add(`${field}.coordinates`, '{ latitude: -90..90, longitude: -180..180 }', coords)
    } else {
      coordinates = { lat, lon }
    }
  }
  return {
    group,
    ...(typeof country === 'string' ? { country } : {}),
    ...(coordinates === undefined ? {} : { coordinates }),
  }
}
