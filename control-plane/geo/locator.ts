/**
 * Locating a client, in order: coverage zones (operator and ISP prefixes), then GeoIP, then
 * the configured policy for clients neither knows. The result says which step answered, so
 * the explain output and the metrics can, too.
 */
import { bytesToHex, formatIp, maskBytes, type IpAddress } from '../../lib/net/ip-address.ts'
import type { CoverageZones } from './coverage-zones.ts'
import type { GeoIpDatabase } from './geoip.ts'
import type { LatLon } from './great-circle.ts'

/** What to do with a client that no zone and no GeoIP record covers. */
export type UnknownGeoPolicy =
  | { readonly kind: 'default-group', readonly group: string }
  | { readonly kind: 'nearest-point', readonly point: LatLon }
  | { readonly kind: 'deny' }

/** Where the client is and where steering should start from. */
export interface ClientLocation {
  readonly source: 'coverage-zone' | 'geoip' | 'unknown'
  /** Start from this cache group (zone hit, or the default group for unknown clients). */
  readonly group?: string
  /** Start from the group nearest this point (GeoIP, unknown-nearest-point, or a zone's coordinates for fallbacks). */
  readonly point?: LatLon
  /** ISO 3166-1 alpha-2; undefined when unknown (licensing applies its unknown-location policy). */
  readonly country?: string
  readonly city?: string
  readonly precision?: 'city' | 'country'
  /**
   * The client's prefix as the answering source saw it (`z:100.64.0.0/10`, `g:51020000/24`,
   * `u`): every client in it locates identically, so it keys the decision cache.
   */
  readonly prefixKey: string
  /** The matching zone or GeoIP network, for explanations. */
  readonly network?: string
  /** True when the unknown-location policy is `deny`. */
  readonly denied?: boolean
}

type Writable<T> = { -readonly [K in keyof T]: T[K] }

/** Options of {@link Locator}. */
export interface LocatorOptions {
  readonly zones: () => CoverageZones
  readonly geoip: GeoIpDatabase | undefined
  readonly unknown: UnknownGeoPolicy
}

/** Locates clients; the zone table is read through a function so reloads take effect at once. */
export class Locator {
  readonly #o: LocatorOptions

  constructor (options: LocatorOptions) {
    this.#o = options
  }

  get unknownPolicy (): UnknownGeoPolicy {
    return this.#o.unknown
  }

  /** Locates one client address. */
  locate (ip: IpAddress): ClientLocation {
    const zone = this.#o.zones().lookup(ip)
    if (zone !== undefined) {
      // GeoIP only when the zone does not say which country its subscribers are in
      const country = zone.zone.country ?? this.#o.geoip?.lookup(ip)?.country
      return {
        source: 'coverage-zone',
        group: zone.zone.group,
        ...(zone.zone.coordinates === undefined ? {} : { point: zone.zone.coordinates }),
        ...(country === undefined ? {} : { country }),
        prefixKey: `z:${zone.cidr.text}`,
        network: zone.cidr.text,
      }
    }
    const geo = this.#o.geoip?.lookup(ip)
    if (geo !== undefined) {
      // built field by field rather than with spreads: this runs for every steering request
      const network = maskBytes(ip.bytes, geo.networkBits)
      const location = { source: 'geoip' } as Writable<ClientLocation>
      location.point = { lat: geo.lat, lon: geo.lon }
      if (geo.country !== undefined) location.country = geo.country
      if (geo.city !== undefined) location.city = geo.city
      location.precision = geo.precision
      location.prefixKey = `g:${bytesToHex(network)}/${geo.networkBits}`
      location.network = `${formatIp(network)}/${geo.networkBits}`
      return location
    }
    return this.locateUnknown()
  }

  /** Where a client nothing knows about goes (also used when the peer address is unusable). */
  locateUnknown (): ClientLocation {
    const policy = this.#o.unknown
    switch (policy.kind) {
      case 'default-group': return { source: 'unknown', group: policy.group, prefixKey: 'u' }
      case 'nearest-point': return { source: 'unknown', point: policy.point, prefixKey: 'u' }
      case 'deny': return { source: 'unknown', prefixKey: 'u', denied: true }
    }
  }
}
