/**
 * Great-circle distance on a spherical Earth (haversine), what Traffic Router's
 * `Geolocation.getDistanceFrom` uses to order cache groups. Good to ~0.5 %: enough to rank.
 */

/** A point in degrees. */
export interface LatLon {
  readonly lat: number
  readonly lon: number
}

/** Mean Earth radius (IUGG), km. */
export const EARTH_RADIUS_KM = 6371.0088
const RAD = Math.PI / 180

/** Distance between two points in km. */
export function greatCircleKm (a: LatLon, b: LatLon): number {
  const dLat = (b.lat - a.lat) * RAD
  const dLon = (b.lon - a.lon) * RAD
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * RAD) * Math.cos(b.lat * RAD) * Math.sin(dLon / 2) ** 2
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(h)))
}

/** Parses `"lat,lon"` in degrees; undefined when malformed or out of range. */
export function parseLatLon (text: string): LatLon | undefined {
  const match = /^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$/.exec(text)
  if (match === null) return undefined
  const lat = Number(match[1])
  const lon = Number(match[2])
  if (lat < -90 || lat > 90 || lon < -180 || lon > 180) return undefined
  return { lat, lon }
}
