import t from 'tap'
import { resolve } from 'node:path'
import {
  GiB, KiB, MAX_TIMER_MS, MiB, PARAMS, PARAM_GROUPS, TiB, describeParams, envName, expectedOf, formatBytes, getParam,
  isSection, parseBool, parseBytes, parseHostPort, parseHttpUrl, parseInteger, parseList, parseParamValue,
  paramsRequiredBy, placeholderOf, topSections
} from '../../config/params.ts'
import type { EdgeConfig, ParamSpec, ParamValue, StreamedgeConfig } from '../../config/params.ts'
import { loadConfig } from '../../config/load.ts'

const spec = (name: string): ParamSpec => {
  const row = getParam(name)
  if (row === undefined) throw new Error(`no param ${name}`)
  return row
}

t.test('the table is well formed', async (t) => {
  const names = PARAMS.map((row) => row.name)
  t.equal(new Set(names).size, names.length, 'names are unique')
  const envs = names.map(envName)
  t.equal(new Set(envs).size, envs.length, 'env var names are unique')
  for (const row of PARAMS) {
    const s: ParamSpec = row
    t.notOk(isSection(s.name), `${s.name} is not also a section`)
    t.match(s.name, /^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)+$/, `${s.name} is dotted camelCase`)
    t.match(s.doc, /^\S.{8,}\.$/, `${s.name} has a sentence of doc`)
    if (/Ms$/.test(s.name)) {
      t.equal(s.type, 'int', `${s.name} is an int`)
      t.equal(s.unit, 'ms', `${s.name} has unit ms`)
      t.ok(s.max !== undefined && s.max <= MAX_TIMER_MS, `${s.name} stays within setTimeout range`)
    }
    if (/Bytes$/.test(s.name)) t.equal(s.type, 'bytes', `${s.name} is a byte size`)
    if (s.type === 'enum') t.ok(s.values !== undefined && s.values.length > 0, `${s.name} lists its values`)
  }
  for (const group of PARAM_GROUPS) for (const name of group) t.ok(getParam(name), `group member ${name} exists`)
  t.same(topSections(), ['log', 'edge', 'shield', 'start', 'controlPlane'])
  t.same(paramsRequiredBy('edge'), ['edge.origin'])
  t.same(paramsRequiredBy('start'), [])
})

t.test('every default parses', async (t) => {
  for (const row of PARAMS) {
    const s: ParamSpec = row
    if (s.default === undefined) continue
    const raw = typeof s.default === 'function' ? s.default() : s.default
    const result = parseParamValue(s, raw, '/base')
    t.ok(result.ok, `default of ${s.name} (${JSON.stringify(raw)}) is valid`)
  }
})

t.test('env var names are STREAMEDGE_ + upper snake case', async (t) => {
  t.equal(envName('edge.cache.memory.maxBytes'), 'STREAMEDGE_EDGE_CACHE_MEMORY_MAX_BYTES')
  t.equal(envName('edge.cacheDir'), 'STREAMEDGE_EDGE_CACHE_DIR')
  t.equal(envName('edge.tls.certFile'), 'STREAMEDGE_EDGE_TLS_CERT_FILE')
  t.equal(envName('edge.cache.checkMpegTs'), 'STREAMEDGE_EDGE_CACHE_CHECK_MPEG_TS')
  t.equal(envName('log.level'), 'STREAMEDGE_LOG_LEVEL')
})

t.test('parseBytes: binary IEC and bare units, decimal SI units', async (t) => {
  const good: [unknown, number][] = [
    [0, 0], [512, 512], ['512', 512], ['512B', 512], ['512 b', 512],
    ['64KiB', 64 * KiB], ['64kib', 64 * KiB], ['10k', 10 * KiB], ['10K', 10 * KiB], ['10KB', 10_000], ['10kB', 10_000],
    ['512MiB', 512 * MiB], ['512M', 512 * MiB], ['512MB', 512_000_000],
    ['1.5GB', 1_500_000_000], ['1.5GiB', 1.5 * GiB], ['2G', 2 * GiB], ['1TiB', TiB], ['1TB', 1e12], [' 256MiB ', 256 * MiB],
    ['1.5KiB', 1536], ['0.1KiB', 102]
  ]
  for (const [raw, bytes] of good) t.equal(parseBytes(raw), bytes, `${JSON.stringify(raw)} = ${bytes}`)
  const bad: unknown[] = ['lots', '', '-1', -1, 1.5, '1.5', '1.5B', '12XB', 'MiB', '1 2MiB', '1e3', '0x10', true, null, [], {}, '9999999TiB', 2 ** 60]
  for (const raw of bad) t.equal(parseBytes(raw), undefined, `${JSON.stringify(raw)} is rejected`)
})

t.test('formatBytes picks the largest exact binary unit', async (t) => {
  t.equal(formatBytes(256 * MiB), '256MiB')
  t.equal(formatBytes(10 * GiB), '10GiB')
  t.equal(formatBytes(1536), '1536B')
  t.equal(formatBytes(2 * KiB), '2KiB')
  t.equal(formatBytes(1), '1B')
  t.equal(formatBytes(3 * TiB), '3TiB')
})

t.test('parseHostPort', async (t) => {
  const good: [string, string, number][] = [
    ['0.0.0.0:8080', '0.0.0.0', 8080], ['127.0.0.1:0', '127.0.0.1', 0], [':80', '0.0.0.0', 80],
    ['localhost:65535', 'localhost', 65535], ['edge-1.example.net:443', 'edge-1.example.net', 443],
    ['[::1]:8080', '::1', 8080], ['[::]:80', '::', 80], ['[2001:db8::1]:443', '2001:db8::1', 443]
  ]
  for (const [raw, host, port] of good) t.same(parseHostPort(raw), { host, port }, raw)
  const bad: unknown[] = ['8080', 8080, 'host', 'host:', 'host:65536', 'host:-1', 'host:http', '::1:80', '[::1]', '[nope]:80',
    '[127.0.0.1]:80', 'a b:80', '-bad-:80', 'host:123456', '', null]
  for (const raw of bad) t.equal(parseHostPort(raw), undefined, `${JSON.stringify(raw)} is rejected`)
})

t.test('parseHttpUrl allows only http: and https:', async (t) => {
  t.equal(parseHttpUrl('http://origin:9000'), 'http://origin:9000/')
  t.equal(parseHttpUrl(' https://origin.example/vod/ '), 'https://origin.example/vod/')
  for (const raw of ['ftp://x', 'file:///etc/passwd', 'origin:9000', '/vod', 'not a url', '', 42]) {
    t.equal(parseHttpUrl(raw), undefined, `${JSON.stringify(raw)} is rejected`)
  }
})

t.test('parseBool, parseInteger, parseList', async (t) => {
  t.equal(parseBool(true), true)
  t.equal(parseBool(false), false)
  t.equal(parseBool('true'), true)
  t.equal(parseBool('FALSE'), false)
  t.equal(parseBool('1'), true)
  t.equal(parseBool('0'), false)
  for (const raw of ['yes', 'no', 'on', '', 1, 0, null]) t.equal(parseBool(raw), undefined, `${JSON.stringify(raw)} is rejected`)

  t.equal(parseInteger(5000), 5000)
  t.equal(parseInteger('5000'), 5000)
  t.equal(parseInteger('-3'), -3)
  for (const raw of ['1.5', 1.5, '1e3', '0x10', '', 'ten', '9007199254740993', Number.NaN, Infinity, true]) {
    t.equal(parseInteger(raw), undefined, `${String(raw)} is rejected`)
  }

  t.same(parseList('a, b,,c '), ['a', 'b', 'c'])
  t.same(parseList(''), [])
  t.same(parseList(['a', 'b,c']), ['a', 'b,c'], 'arrays are taken as they are')
  t.equal(parseList([1, 2]), undefined)
  t.equal(parseList(5), undefined)
})

t.test('parseParamValue applies ranges, patterns, empty values and base dirs', async (t) => {
  t.same(parseParamValue(spec('start.edges'), '8', '/'), { ok: true, value: 8 })
  t.same(parseParamValue(spec('start.edges'), 9, '/'), { ok: false, expected: 'an integer from 1 to 8' })
  t.same(parseParamValue(spec('start.edges'), 0, '/'), { ok: false, expected: 'an integer from 1 to 8' })
  t.same(parseParamValue(spec('edge.upstream.connections'), '0', '/'), { ok: false, expected: 'an integer of at least 1' })
  t.same(parseParamValue(spec('edge.cache.memory.maxBytes'), 0, '/'),
    { ok: false, expected: 'a byte size like 512MiB (at least 1B)' })
  t.same(parseParamValue(spec('log.level'), 'debug', '/'), { ok: true, value: 'debug' })
  t.same(parseParamValue(spec('log.level'), 'verbose', '/'),
    { ok: false, expected: 'one of fatal, error, warn, info, debug, trace, silent' })
  t.same(parseParamValue(spec('edge.id'), 'edge-1.fra', '/'), { ok: true, value: 'edge-1.fra' })
  t.notOk(parseParamValue(spec('edge.id'), 'edge 1', '/').ok, 'edge.id rejects spaces (it goes into Cache-Status)')
  t.ok(parseParamValue(spec('edge.id'), 'e'.repeat(64), '/').ok, 'an id of 64 characters is an HLS pathway id')
  const long = parseParamValue(spec('edge.id'), 'e'.repeat(65), '/')
  t.notOk(long.ok, 'edge.id rejects 65 characters (a pathway id has at most 64)')
  if (!long.ok) t.match(long.expected, /at most 64/, 'the message says what an id may be')
  t.same(parseParamValue(spec('edge.cacheDir'), 'cache', '/srv/se'), { ok: true, value: resolve('/srv/se', 'cache') })
  t.same(parseParamValue(spec('edge.cacheDir'), '/abs', '/srv/se'), { ok: true, value: '/abs' })
  t.same(parseParamValue(spec('edge.origin'), '', '/'), { ok: true, value: undefined }, 'empty unsets an optional setting')
  t.same(parseParamValue(spec('edge.origin'), null, '/'), { ok: true, value: undefined }, 'null unsets an optional setting')
  t.same(parseParamValue(spec('edge.cache.stripQueryParams'), '', '/'), { ok: true, value: [] }, 'empty is the empty list')
  t.notOk(parseParamValue(spec('edge.listen'), '', '/').ok, 'empty is invalid for a setting with a default')
  t.notOk(parseParamValue(spec('edge.cacheDir'), null, '/').ok, 'null is invalid for a setting with a default')
  t.same(parseParamValue(spec('edge.cache.disk.fsync'), '1', '/'), { ok: true, value: true })
})

t.test('url-list parses every entry', async (t) => {
  const urlList: ParamSpec = { name: 'x.origins', type: 'url-list', default: [], doc: 'Test.' }
  t.same(parseParamValue(urlList, 'http://a, https://b/x', '/'), { ok: true, value: ['http://a/', 'https://b/x'] })
  t.same(parseParamValue(urlList, ['http://a'], '/'), { ok: true, value: ['http://a/'] })
  t.same(parseParamValue(urlList, 'http://a,ftp://b', '/'), { ok: false, expected: expectedOf(urlList) })
  t.same(parseParamValue(urlList, '', '/'), { ok: true, value: [] })
})

t.test('describeParams gives docs everything they show', async (t) => {
  const infos = describeParams()
  t.equal(infos.length, PARAMS.length)
  const byName = new Map(infos.map((info) => [info.name, info]))
  t.match(byName.get('edge.cache.memory.maxBytes'), {
    type: 'bytes', typeDoc: 'bytes ≥ 1B', default: '256MiB', defaultIsLiteral: true,
    env: 'STREAMEDGE_EDGE_CACHE_MEMORY_MAX_BYTES', flag: '--edge.cache.memory.maxBytes'
  })
  t.match(byName.get('edge.cache.lockTimeoutMs'), { typeDoc: 'int ≥ 1 (ms)', default: '5000' })
  t.match(byName.get('start.edges'), { typeDoc: 'int 1..8' })
  t.match(byName.get('edge.id'), { default: 'edge-<host name> (roles on one host must differ: the id is this node\'s name in Via and CDN-Loop)', defaultIsLiteral: false })
  t.match(byName.get('edge.origin'), { default: undefined, requiredBy: ['edge'] })
  t.equal(placeholderOf(spec('edge.origin')), 'URL')
  t.equal(placeholderOf(spec('edge.cacheDir')), 'DIR')
  t.equal(placeholderOf(spec('edge.listen')), 'HOST:PORT')
})

t.test('config types are derived from the table', async (t) => {
  const config = loadConfig({ env: {}, argv: { 'edge.origin': 'http://o' } })
  // These lines are checked by `tsc --noEmit`: a wrong derivation fails the type check.
  const maxBytes: StreamedgeConfig['edge']['cache']['memory']['maxBytes'] = config.edge.cache.memory.maxBytes
  const asNumber: number = maxBytes
  const level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' = config.log.level
  const port: number = config.edge.listen.port
  const strip: readonly string[] = config.edge.cache.stripQueryParams
  const origin: string | undefined = config.edge.origin
  const tls: ParamValue<'edge.tls.listen'> = config.edge.tls.listen
  const edge: EdgeConfig = config.edge
  // @ts-expect-error edge.origin has no default, so it may be undefined
  const mustBeString: string = config.edge.origin
  // @ts-expect-error log.level is a union of the enum values, not any string
  const notALevel: typeof config.log.level = 'verbose'
  t.throws(() => {
    // @ts-expect-error the config is read-only, in its type and at run time
    config.edge.listen = { host: 'x', port: 1 }
  }, TypeError)
  t.equal(asNumber, 256 * MiB)
  t.equal(level, 'info')
  t.equal(port, 8080)
  t.same(strip, [])
  t.equal(origin, 'http://o/')
  t.equal(tls, undefined)
  t.equal(edge.upstream.connections, 128)
  t.ok(mustBeString)
  t.ok(notALevel)
})
