/**
 * Great-circle distance (haversine on the IUGG mean sphere): exact values the geometry fixes,
 * the antimeridian and the poles, antipodes without NaN, ranking like the selector does; and
 * the `"lat,lon"` parser behind controlPlane.unknownGeo.point, bounds included.
 */
import t from 'tap'
import { EARTH_RADIUS_KM, greatCircleKm, parseLatLon, type LatLon } from '../../../control-plane/geo/great-circle.ts'

const KM_PER_DEGREE = Math.PI * EARTH_RADIUS_KM / 180
const close = (actual: number, expected: number, tolerance = 1e-6): boolean => Math.abs(actual - expected) <= tolerance

const LONDON: LatLon = { lat: 51.5074, lon: -0.1278 }
const PARIS: LatLon = { lat: 48.8566, lon: 2.3522 }
const FRANKFURT: LatLon = { lat: 50.1109, lon: 8.6821 }
const AMSTERDAM: LatLon = { lat: 52.3676, lon: 4.9041 }
const MADRID: LatLon = { lat: 40.4168, lon: -3.7038 }
const NEW_YORK: LatLon = { lat: 40.7128, lon: -74.006 }
const SYDNEY: LatLon = { lat: -33.8688, lon: 151.2093 }

t.test('the mean Earth radius (IUGG)', async (t) => {
  t.equal(EARTH_RADIUS_KM, 6371.0088)
})

t.test('distances the geometry fixes exactly', async (t) => {
  t.equal(greatCircleKm(LONDON, LONDON), 0, 'a point is 0 km from itself')
  t.ok(close(greatCircleKm({ lat: 10, lon: 20 }, { lat: 11, lon: 20 }), KM_PER_DEGREE), 'one degree along a meridian')
  t.ok(close(greatCircleKm({ lat: 0, lon: 20 }, { lat: 0, lon: 21 }), KM_PER_DEGREE), 'one degree along the equator')
  t.ok(close(greatCircleKm({ lat: 0, lon: 0 }, { lat: 0, lon: 90 }), 90 * KM_PER_DEGREE), 'a quarter of the equator')
  t.ok(close(greatCircleKm({ lat: 0, lon: 37 }, { lat: 90, lon: 0 }), 90 * KM_PER_DEGREE), 'the equator to the pole, from any longitude')
  t.ok(close(greatCircleKm({ lat: 90, lon: 0 }, { lat: -90, lon: 0 }), 180 * KM_PER_DEGREE), 'pole to pole')
  // one degree of longitude at latitude 60 is half a degree of the equator, but the great
  // circle is a little shorter than the parallel
  const at60 = greatCircleKm({ lat: 60, lon: 0 }, { lat: 60, lon: 1 })
  t.ok(at60 < KM_PER_DEGREE / 2 && at60 > KM_PER_DEGREE / 2 - 0.01, `1° of longitude at 60°N: ${at60} km`)
})

t.test('short distances keep their precision (a few hundred metres between nodes of a site)', async (t) => {
  const d = greatCircleKm({ lat: 48.1, lon: 11.5 }, { lat: 48.101, lon: 11.5 })
  t.ok(close(d, KM_PER_DEGREE / 1000, 1e-9), `0.001° of latitude is ${d} km`)
  t.ok(d > 0)
})

t.test('the antimeridian is crossed, not gone round', async (t) => {
  t.ok(close(greatCircleKm({ lat: 0, lon: 179.5 }, { lat: 0, lon: -179.5 }), KM_PER_DEGREE), '1°, not 359°')
  t.ok(close(greatCircleKm({ lat: -17.7, lon: 178 }, { lat: -17.7, lon: -178 }), greatCircleKm({ lat: -17.7, lon: 0 }, { lat: -17.7, lon: 4 })), 'Fiji across the date line equals 4° of longitude anywhere')
  t.ok(close(greatCircleKm({ lat: 0, lon: 180 }, { lat: 0, lon: -180 }), 0), '180 and -180 are one meridian')
})

t.test('at a pole longitude does not matter', async (t) => {
  t.ok(close(greatCircleKm({ lat: 90, lon: 0 }, { lat: 90, lon: 123 }), 0))
  t.ok(close(greatCircleKm({ lat: -90, lon: -45 }, { lat: -90, lon: 170 }), 0))
  t.ok(close(greatCircleKm({ lat: 89, lon: 0 }, { lat: 89, lon: 180 }), 2 * KM_PER_DEGREE), 'over the pole, 1° each side')
})

t.test('antipodes: half the circumference, never NaN from rounding', async (t) => {
  const half = Math.PI * EARTH_RADIUS_KM
  const pairs: Array<[LatLon, LatLon]> = [
    [{ lat: 0, lon: 0 }, { lat: 0, lon: 180 }],
    [{ lat: 45, lon: 30 }, { lat: -45, lon: -150 }],
    [{ lat: 33.3, lon: -71.7 }, { lat: -33.3, lon: 108.3 }],
    [{ lat: -0.0001, lon: 179.9999 }, { lat: 0.0001, lon: -0.0001 }],
  ]
  for (const [a, b] of pairs) {
    const d = greatCircleKm(a, b)
    t.ok(Number.isFinite(d), `${JSON.stringify(a)} to ${JSON.stringify(b)} is a number`)
    t.ok(close(d, half, 0.1), `${d} km is half the circumference`)
    t.ok(d <= half + 1e-9, 'and no more')
  }
})

t.test('symmetric, and the triangle inequality holds', async (t) => {
  const points = [LONDON, PARIS, FRANKFURT, AMSTERDAM, MADRID, NEW_YORK, SYDNEY, { lat: 90, lon: 0 }, { lat: 0, lon: 180 }]
  for (const a of points) {
    for (const b of points) {
      const ab = greatCircleKm(a, b)
      t.ok(close(ab, greatCircleKm(b, a), 1e-9), `${a.lat},${a.lon} ↔ ${b.lat},${b.lon}`)
      for (const c of points) {
        if (ab > greatCircleKm(a, c) + greatCircleKm(c, b) + 1e-6) t.fail(`triangle inequality broken via ${c.lat},${c.lon}`)
      }
    }
  }
})

t.test('city pairs within the promised 0.5 % of the ellipsoid', async (t) => {
  // geodesic (WGS84) distances rounded to the km
  const london = greatCircleKm(LONDON, PARIS)
  t.ok(Math.abs(london - 344) / 344 < 0.005, `London-Paris ${london} km`)
  const sydney = greatCircleKm(SYDNEY, LONDON)
  t.ok(Math.abs(sydney - 16_990) / 16_990 < 0.005, `Sydney-London ${sydney} km`)
})

t.test('ranks cache groups the way the selector needs', async (t) => {
  const groups: Array<[string, LatLon]> = [['mad', MADRID], ['nyc', NEW_YORK], ['ams', AMSTERDAM], ['par', PARIS], ['syd', SYDNEY]]
  const from = FRANKFURT
  const ranked = [...groups].sort((a, b) => greatCircleKm(from, a[1]) - greatCircleKm(from, b[1])).map(([id]) => id)
  t.same(ranked, ['ams', 'par', 'mad', 'nyc', 'syd'])
})

t.test('parseLatLon: decimal degrees, optional spaces, bounds included', async (t) => {
  t.same(parseLatLon('51.5074,-0.1278'), { lat: 51.5074, lon: -0.1278 })
  t.same(parseLatLon('  40.7 , -74  '), { lat: 40.7, lon: -74 })
  t.same(parseLatLon('0,0'), { lat: 0, lon: 0 })
  t.same(parseLatLon('90,180'), { lat: 90, lon: 180 })
  t.same(parseLatLon('-90,-180'), { lat: -90, lon: -180 })
  t.same(parseLatLon('-90.0,-180.000'), { lat: -90, lon: -180 })
})

t.test('parseLatLon: out of range or malformed is undefined', async (t) => {
  const bad = [
    '90.0001,0', '-90.5,0', '0,180.01', '0,-181', '91,0', '0,360',
    '', ',', '51.5', '51.5,', ',0.1', '51.5;0.1', '51.5 0.1', '1,2,3',
    'abc,def', 'NaN,0', 'Infinity,0', '1e1,2', '+51.5,0', '.5,1', '5.,1', '51,5,0', '0x10,0',
    'lat=51.5,lon=0',
  ]
  for (const text of bad) t.equal(parseLatLon(text), undefined, JSON.stringify(text))
})
