/**
 * GeoIP City lookups (the only maxmind import).
 *
 * Reads MaxMind DB files of two schemas, detected per record:
 * - MaxMind GeoIP2 / GeoLite2 City (and DB-IP's own MMDB): `country.iso_code`,
 *   `location.latitude/longitude`, `city.names.en`;
 * - ip-location-db (the embedded DB-IP City Lite default, two files, one per IP version):
 *   flat `country_code`, `latitude`, `longitude`, `city`.
 * Several files are consulted in order and the first record found wins, so one MaxMind City
 * file, or DB-IP's IPv4 + IPv6 pair, both work. Files are polled for changes and reopened
 * without a restart; a file that fails to open keeps the previous database in service.
 */
import { unwatchFile, watchFile, type Stats } from 'node:fs'
import maxmind, { type Reader } from 'maxmind'
import { CdnError } from '../../lib/errors.ts'
import type { Logger } from '../../lib/log.ts'
import type { IpAddress } from '../../lib/net/ip-address.ts'

/** Where a client is, as far as the database knows. */
export interface GeoLocation {
  /** ISO 3166-1 alpha-2, upper case; undefined when the record has none. */
  readonly country: string | undefined
  readonly lat: number
  readonly lon: number
  readonly city?: string
  /**
   * `city` when the record names a city; `country` when it only knows the country, whose
   * coordinates are then a centroid (apache/trafficcontrol#4912: centroids pile clients
   * onto one cache group), which the explain output shows.
   */
  readonly precision: 'city' | 'country'
  /** The database network the address fell in (`81.2.69.0/24`): clients in it look alike. */
  readonly networkBits: number
}

/** Options of {@link GeoIpDatabase.open}. */
export interface GeoIpOptions {
  /** MMDB files, consulted in order. */
  readonly files: readonly string[]
  /** Poll the files for changes this often (ms); 0 disables reloading. */
  readonly watchIntervalMs?: number
  /** Records cached per file (maxmind's LRU). */
  readonly cacheEntries?: number
  readonly logger?: Logger
  /** Called after a file was reopened (the decision cache depends on locations). */
  readonly onReload?: (file: string, ok: boolean) => void
}

type AnyRecord = Record<string, unknown>

/** One opened database file (internal to {@link GeoIpDatabase}). */
export interface GeoIpFile {
  readonly path: string
  reader: Reader<AnyRecord>
  ipVersion: number
  databaseType: string
  buildEpoch: Date
  /** Reloads of one file run one after another, so an older read never replaces a newer one. */
  reloading: Promise<void>
}

/** A set of opened GeoIP City databases. */
export class GeoIpDatabase {
  readonly #files: GeoIpFile[]
  readonly #o: GeoIpOptions
  readonly #listeners: Array<{ path: string, listener: (curr: Stats, prev: Stats) => void }> = []
  #closed = false

  /** Use {@link GeoIpDatabase.open}. */
  constructor (files: GeoIpFile[], options: GeoIpOptions) {
    this.#files = files
    this.#o = options
  }

  /** Opens every file; throws `CDN_ERR_CONFIG_FILE` naming the file that cannot be read. */
  static async open (options: GeoIpOptions): Promise<GeoIpDatabase> {
    if (!Array.isArray(options.files) || options.files.length === 0) {
      throw new TypeError(`Expected options.files to list at least one .mmdb file, got ${JSON.stringify(options.files)}`)
    }
    const files: GeoIpFile[] = []
    for (const path of options.files) files.push(await openFile(path, options.cacheEntries))
    const db = new GeoIpDatabase(files, options)
    if ((options.watchIntervalMs ?? 0) > 0) db.#watch(options.watchIntervalMs ?? 0)
    return db
  }

  /** What each file is (for logs and /readyz details). */
  describe (): Array<{ path: string, databaseType: string, ipVersion: number, buildEpoch: string }> {
    return this.#files.map((f) => ({ path: f.path, databaseType: f.databaseType, ipVersion: f.ipVersion, buildEpoch: f.buildEpoch.toISOString() }))
  }

  /** The location of `ip`, or undefined when no file knows it (private ranges, unknown blocks). */
  lookup (ip: IpAddress): GeoLocation | undefined {
    for (const file of this.#files) {
      // an IPv4-only file cannot answer for IPv6; an IPv6 file maps IPv4 into ::/96
      if (ip.version === 6 && file.ipVersion === 4) continue
      let found: [AnyRecord | null, number]
      try {
        found = file.reader.getWithPrefixLength(ip.text)
      } catch {
        continue
      }
      const [record, prefixLength] = found
      if (record === null) continue
      // mmdb-lib counts an IPv4 address's depth from the IPv4 subtree, so this is IPv4 bits
      const location = toGeoLocation(record, prefixLength)
      if (location !== undefined) return location
    }
    return undefined
  }

  /** Stops watching the files. */
  close (): void {
    this.#closed = true
    for (const { path, listener } of this.#listeners) unwatchFile(path, listener)
    this.#listeners.length = 0
  }

  #watch (intervalMs: number): void {
    for (const file of this.#files) {
      const listener = (curr: Stats, prev: Stats): void => {
        if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size) return
        if (curr.size === 0 && curr.mtimeMs === 0) return // deleted: keep serving from memory
        file.reloading = file.reloading.then(() => this.#reload(file))
      }
      watchFile(file.path, { interval: intervalMs, persistent: false }, listener)
      this.#listeners.push({ path: file.path, listener })
    }
  }

  async #reload (file: GeoIpFile): Promise<void> {
    try {
      const fresh = await openFile(file.path, this.#o.cacheEntries)
      if (this.#closed) return
      file.reader = fresh.reader
      file.ipVersion = fresh.ipVersion
      file.databaseType = fresh.databaseType
      file.buildEpoch = fresh.buildEpoch
      this.#o.logger?.info({ file: file.path, databaseType: fresh.databaseType, buildEpoch: fresh.buildEpoch.toISOString() }, 'GeoIP database reloaded')
      this.#o.onReload?.(file.path, true)
    } catch (err) {
      // a half-written file: keep the previous database; the final write triggers another reload
      this.#o.logger?.warn({ file: file.path, err: { message: (err as Error).message } }, 'GeoIP database reload failed; keeping the previous one')
      this.#o.onReload?.(file.path, false)
    }
  }
}

/**
 * Maps a record of either schema to a location; undefined when it has no coordinates.
 * Exported for tests and for anyone feeding records from elsewhere.
 */
export function toGeoLocation (record: AnyRecord, networkBits: number): GeoLocation | undefined {
  const location = record['location']
  if (typeof location === 'object' && location !== null) {
    const loc = location as AnyRecord
    const country = nested(record, 'country', 'iso_code') ?? nested(record, 'registered_country', 'iso_code')
    const city = nested(record, 'city', 'names', 'en')
    return build(country, loc['latitude'], loc['longitude'], city, networkBits)
  }
  if ('country_code' in record || 'latitude' in record) {
    const city = typeof record['city'] === 'string' ? record['city'] : undefined
    return build(record['country_code'], record['latitude'], record['longitude'], city, networkBits)
  }
  return undefined
}

function build (country: unknown, lat: unknown, lon: unknown, city: string | undefined, networkBits: number): GeoLocation | undefined {
  if (typeof lat !== 'number' || typeof lon !== 'number' || !Number.isFinite(lat) || !Number.isFinite(lon)) return undefined
  const code = typeof country === 'string' && /^[A-Za-z]{2}$/.test(country) ? country.toUpperCase() : undefined
  const named = city !== undefined && city !== ''
  return {
    country: code,
    lat,
    lon,
    ...(named ? { city } : {}),
    precision: named ? 'city' : 'country',
    networkBits,
  }
}

function nested (record: AnyRecord, ...path: string[]): string | undefined {
  let node: unknown = record
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined
    node = (node as AnyRecord)[key]
  }
  return typeof node === 'string' ? node : undefined
}

async function openFile (path: string, cacheEntries: number | undefined): Promise<GeoIpFile> {
  let reader: Reader<AnyRecord>
  try {
    reader = await maxmind.open<AnyRecord>(path, { cache: { max: cacheEntries ?? 10_000 } })
  } catch (err) {
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Cannot open GeoIP database ${path}: ${(err as Error).message}`, { cause: err })
  }
  const meta = reader.metadata
  return { path, reader, ipVersion: meta.ipVersion, databaseType: meta.databaseType, buildEpoch: meta.buildEpoch, reloading: Promise.resolve() }
}
