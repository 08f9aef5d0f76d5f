import t from 'tap'
import type { Test } from 'tap'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isCdnError } from '../../lib/errors.ts'
import { getSetting, loadConfig, requireSettings } from '../../config/load.ts'
import type { LoadConfigOptions } from '../../config/load.ts'
import { GiB, KiB, MiB, paramsRequiredBy } from '../../config/params.ts'
import { describeCommands } from '../../config/cli.ts'

const EXAMPLES_DIR = fileURLToPath(new URL('../../config/examples/', import.meta.url))

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-config-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Loads with no process env leaking in, and returns the CdnError it threw. */
function loadError (options: LoadConfigOptions): { code: string, message: string, lines: string[] } {
  try {
    loadConfig({ env: {}, ...options })
  } catch (err) {
    if (!isCdnError(err)) throw err
    return { code: err.code, message: err.message, lines: err.message.split('\n') }
  }
  throw new Error('expected loadConfig to throw')
}

t.test('defaults alone make a complete config', async (t) => {
  const config = loadConfig({ env: {}, cwd: '/srv/streamedge' })
  t.equal(config.log.level, 'info')
  t.equal(config.log.access, true)
  t.equal(config.edge.id, `edge-${hostname()}`.slice(0, 64))
  t.same(config.edge.listen, { host: '0.0.0.0', port: 8080 })
  t.equal(config.edge.origin, undefined)
  t.equal(config.edge.tls.listen, undefined)
  t.equal(config.edge.cacheDir, '/srv/streamedge/var/cache/edge', 'relative default resolved against cwd')
  t.equal(config.edge.cache.memory.maxBytes, 256 * MiB)
  t.equal(config.edge.cache.memory.maxObjectBytes, 16 * MiB)
  t.equal(config.edge.cache.disk.maxBytes, 10 * GiB)
  t.equal(config.edge.cache.disk.fsync, false)
  t.equal(config.edge.cache.maxObjectBytes, GiB)
  t.equal(config.edge.cache.lockTimeoutMs, 5000)
  t.same(config.edge.cache.stripQueryParams, [])
  t.equal(config.edge.cache.checkMpegTs, true)
  t.same(config.edge.upstream, { connectTimeoutMs: 3000, firstByteTimeoutMs: 10000, idleTimeoutMs: 10000, connections: 128, keepAliveTimeoutMs: 30000 })
  t.same(config.edge.server, { keepAliveTimeoutMs: 5000, headersTimeoutMs: 10000, shutdownGraceMs: 10000, fastPath: true, mallocTrimIntervalMs: 5000, sendfile: 'remote' })
  t.same(config.start, { edges: 2, listenHost: '127.0.0.1', basePort: 0 })
})

t.test('precedence: defaults < file < env < argv', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'edge.yaml')
  await writeFile(file, [
    'edge:',
    '  listen: 10.0.0.1:81',
    '  upstream:',
    '    connections: 10',
    '    connectTimeoutMs: 1000',
    '    idleTimeoutMs: 1000',
    ''
  ].join('\n'))
  const config = loadConfig({
    file,
    env: {
      STREAMEDGE_EDGE_UPSTREAM_CONNECTIONS: '20',
      STREAMEDGE_EDGE_UPSTREAM_CONNECT_TIMEOUT_MS: '2000',
      PATH: '/usr/bin', // other variables are none of our business
      streamedge_edge_listen: 'nope' // neither are differently cased ones
    },
    argv: { 'edge.upstream.connections': '30' }
  })
  t.same(config.edge.listen, { host: '10.0.0.1', port: 81 }, 'file beats default')
  t.equal(config.edge.upstream.idleTimeoutMs, 1000, 'file value kept when nothing overrides it')
  t.equal(config.edge.upstream.connectTimeoutMs, 2000, 'env beats file')
  t.equal(config.edge.upstream.connections, 30, 'argv beats env and file')
  t.equal(config.edge.upstream.firstByteTimeoutMs, 10000, 'default kept')
})

t.test('argv may be dotted or nested, as yargs gives it, and ignores _ and $0', async (t) => {
  const config = loadConfig({
    env: {},
    argv: { _: ['edge'], $0: 'streamedge', 'edge.listen': ':81', edge: { cache: { memory: { maxBytes: '1GiB' } } } }
  })
  t.same(config.edge.listen, { host: '0.0.0.0', port: 81 })
  t.equal(config.edge.cache.memory.maxBytes, GiB)
})

t.test('every type parses from env strings', async (t) => {
  const config = loadConfig({
    cwd: '/work',
    env: {
      STREAMEDGE_LOG_LEVEL: 'debug',
      STREAMEDGE_LOG_ACCESS: 'false',
      STREAMEDGE_EDGE_ID: 'edge-7',
      STREAMEDGE_EDGE_LISTEN: '[::1]:8443',
      STREAMEDGE_EDGE_ORIGIN: 'https://origin.example/base/',
      STREAMEDGE_EDGE_CACHE_DIR: 'cache',
      STREAMEDGE_EDGE_CACHE_MEMORY_MAX_BYTES: '64KiB',
      STREAMEDGE_EDGE_CACHE_DISK_MAX_BYTES: '1.5GB',
      STREAMEDGE_EDGE_CACHE_DISK_FSYNC: '1',
      STREAMEDGE_EDGE_CACHE_CHECK_MPEG_TS: '0',
      STREAMEDGE_EDGE_CACHE_STRIP_QUERY_PARAMS: 'token, sig',
      STREAMEDGE_START_EDGES: '8'
    }
  })
  t.equal(config.log.level, 'debug')
  t.equal(config.log.access, false)
  t.equal(config.edge.id, 'edge-7')
  t.same(config.edge.listen, { host: '::1', port: 8443 })
  t.equal(config.edge.origin, 'https://origin.example/base/')
  t.equal(config.edge.cacheDir, '/work/cache')
  t.equal(config.edge.cache.memory.maxBytes, 64 * KiB)
  t.equal(config.edge.cache.disk.maxBytes, 1_500_000_000)
  t.equal(config.edge.cache.disk.fsync, true)
  t.equal(config.edge.cache.checkMpegTs, false)
  t.same(config.edge.cache.stripQueryParams, ['token', 'sig'])
  t.equal(config.start.edges, 8)
})

t.test('bad values name the field, the value and where it came from', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['STREAMEDGE_LOG_LEVEL', 'loud', /^Invalid config: log\.level must be one of fatal, error, warn, info, debug, trace, silent, got "loud" \(from env STREAMEDGE_LOG_LEVEL\)$/],
    ['STREAMEDGE_LOG_ACCESS', 'yes', /^Invalid config: log\.access must be true or false, got "yes"/],
    ['STREAMEDGE_EDGE_ID', 'my edge', /^Invalid config: edge\.id must be a non-empty string of letters.*got "my edge"/],
    ['STREAMEDGE_EDGE_LISTEN', '8080', /^Invalid config: edge\.listen must be HOST:PORT.*got "8080"/],
    ['STREAMEDGE_EDGE_LISTEN', 'host:70000', /^Invalid config: edge\.listen must be .*port from 0 to 65535, got "host:70000"/],
    ['STREAMEDGE_EDGE_ORIGIN', 'ftp://origin', /^Invalid config: edge\.origin must be an http: or https: URL, got "ftp:\/\/origin"/],
    ['STREAMEDGE_EDGE_CACHE_MEMORY_MAX_BYTES', 'lots', /^Invalid config: edge\.cache\.memory\.maxBytes must be a byte size like 512MiB \(at least 1B\), got "lots" \(from env STREAMEDGE_EDGE_CACHE_MEMORY_MAX_BYTES\)$/],
    ['STREAMEDGE_EDGE_CACHE_LOCK_TIMEOUT_MS', '0', /^Invalid config: edge\.cache\.lockTimeoutMs must be an integer from 1 to 2147483647, got "0"/],
    ['STREAMEDGE_EDGE_CACHE_LOCK_TIMEOUT_MS', '1.5', /lockTimeoutMs must be an integer/],
    ['STREAMEDGE_EDGE_CACHE_LOCK_TIMEOUT_MS', '9999999999', /lockTimeoutMs must be an integer from 1 to 2147483647/],
    ['STREAMEDGE_START_EDGES', '9', /^Invalid config: start\.edges must be an integer from 1 to 8, got "9"/],
    ['STREAMEDGE_EDGE_CACHE_DIR', '', /^Invalid config: edge\.cacheDir must be a non-empty file system path, got ""/]
  ]
  for (const [key, value, pattern] of cases) {
    const error = loadError({ env: { [key]: value } })
    t.equal(error.code, 'CDN_ERR_CONFIG_INVALID', `${key}=${value}: code`)
    t.match(error.message, pattern, `${key}=${value}: message`)
  }
  const fromArgv = loadError({ argv: { 'edge.cache.memory.maxBytes': 'lots' } })
  t.match(fromArgv.message, /got "lots" \(from --edge\.cache\.memory\.maxBytes\)$/)
})

t.test('file values: YAML with types, lists and bad values', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'edge.yaml')
  await writeFile(file, [
    'log: { level: warn, access: false }',
    'edge:',
    '  origin: http://127.0.0.1:9000',
    '  cacheDir: ./cache   # relative to this file',
    '  tls:',
    '    listen: ":8443"',
    '    certFile: tls/cert.pem',
    '    keyFile: /etc/key.pem',
    '  cache:',
    '    memory: { maxBytes: 1048576 }',
    '    stripQueryParams: [token, sig]',
    'start:',
    ''
  ].join('\n'))
  const config = loadConfig({ file, env: {}, cwd: '/elsewhere' })
  t.equal(config.log.level, 'warn')
  t.equal(config.log.access, false)
  t.equal(config.edge.origin, 'http://127.0.0.1:9000/')
  t.equal(config.edge.cacheDir, join(dir, 'cache'))
  t.same(config.edge.tls, { listen: { host: '0.0.0.0', port: 8443 }, certFile: join(dir, 'tls/cert.pem'), keyFile: '/etc/key.pem' })
  t.equal(config.edge.cache.memory.maxBytes, MiB)
  t.same(config.edge.cache.stripQueryParams, ['token', 'sig'])
  t.same(config.start, { edges: 2, listenHost: '127.0.0.1', basePort: 0 }, 'an empty section is fine')

  const bad = join(dir, 'bad.yaml')
  await writeFile(bad, 'edge:\n  cache:\n    memory:\n      maxBytes: lots\n    disk: 5\n')
  const error = loadError({ file: bad })
  t.equal(error.code, 'CDN_ERR_CONFIG_INVALID')
  t.ok(error.lines.includes(`Invalid config: edge.cache.memory.maxBytes must be a byte size like 512MiB (at least 1B), got "lots" (from file ${bad})`))
  t.ok(error.lines.includes(`Invalid config: edge.cache.disk must be a section (a mapping of settings), got 5 (from file ${bad})`))

  const infinite = join(dir, 'inf.yaml')
  await writeFile(infinite, 'edge:\n  cache:\n    memory:\n      maxBytes: .inf\n')
  t.match(loadError({ file: infinite }).message, /maxBytes must be .*, got Infinity \(from file/, 'YAML .inf is named, not shown as null')
})

t.test('an enum that was a bool (server.sendfile) takes true and false as its on and off, from env and YAML', async (t) => {
  t.equal(loadConfig({ env: { STREAMEDGE_EDGE_SERVER_SENDFILE: 'true' } }).edge.server.sendfile, 'on')
  t.equal(loadConfig({ env: { STREAMEDGE_SHIELD_SERVER_SENDFILE: ' false ' } }).shield.server.sendfile, 'off')
  t.equal(loadConfig({ env: { STREAMEDGE_EDGE_SERVER_SENDFILE: 'remote' } }).edge.server.sendfile, 'remote')
  const dir = await tempDir(t)
  const file = join(dir, 'edge.yaml')
  await writeFile(file, 'edge:\n  server:\n    sendfile: true\nshield:\n  server:\n    sendfile: off\n')
  const config = loadConfig({ file, env: {} })
  t.equal(config.edge.server.sendfile, 'on', 'a YAML boolean')
  t.equal(config.shield.server.sendfile, 'off', 'YAML 1.2 reads off as a string')
  t.ok(loadError({ env: { STREAMEDGE_EDGE_SERVER_SENDFILE: 'yes' } }).lines.includes('Invalid config: edge.server.sendfile must be one of remote, on, off (true = on, false = off), got "yes" (from env STREAMEDGE_EDGE_SERVER_SENDFILE)'))
})

t.test('file values: JSON, .yml, dotted keys, empty files', async (t) => {
  const dir = await tempDir(t)
  const json = join(dir, 'edge.json')
  await writeFile(json, JSON.stringify({ edge: { listen: '127.0.0.1:0', cache: { stripQueryParams: 'a,b' } }, 'log.level': 'error' }))
  const fromJson = loadConfig({ file: json, env: {} })
  t.same(fromJson.edge.listen, { host: '127.0.0.1', port: 0 })
  t.same(fromJson.edge.cache.stripQueryParams, ['a', 'b'])
  t.equal(fromJson.log.level, 'error', 'dotted keys work in files too')

  const yml = join(dir, 'edge.yml')
  await writeFile(yml, '# only comments\n')
  t.equal(loadConfig({ file: yml, env: {} }).edge.cache.memory.maxBytes, 256 * MiB, 'a file of comments is empty')
})

t.test('unknown keys in file, env and argv are errors with suggestions', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'edge.yaml')
  await writeFile(file, 'edge:\n  cache:\n    memroy:\n      maxBytes: 1GiB\n  listne: ":80"\nbogus: {}\n')
  const fromFile = loadError({ file })
  t.equal(fromFile.code, 'CDN_ERR_CONFIG_UNKNOWN_KEY')
  t.same(fromFile.lines, [
    `Unknown config key: edge.cache.memroy (from file ${file}); did you mean edge.cache.memory?`,
    `Unknown config key: edge.listne (from file ${file}); did you mean edge.listen?`,
    `Unknown config key: bogus (from file ${file})`
  ])

  const fromEnv = loadError({ env: { STREAMEDGE_EDGE_CACHE_MEMROY_MAX_BYTES: '1', STREAMEDGE_WHATEVER: 'x' } })
  t.equal(fromEnv.code, 'CDN_ERR_CONFIG_UNKNOWN_KEY')
  t.same(fromEnv.lines, [
    'Unknown config key: STREAMEDGE_EDGE_CACHE_MEMROY_MAX_BYTES (from env); did you mean STREAMEDGE_EDGE_CACHE_MEMORY_MAX_BYTES?',
    'Unknown config key: STREAMEDGE_WHATEVER (from env)'
  ])

  const fromArgv = loadError({ argv: { 'edge.cache.max-object-bytes': '1', origin: 'http://x' } })
  t.same(fromArgv.lines, [
    'Unknown config key: edge.cache.max-object-bytes (from --edge.cache.max-object-bytes); did you mean edge.cache.maxObjectBytes?',
    'Unknown config key: origin (from --origin)'
  ])

  t.doesNotThrow(() => loadConfig({ env: { STREAMEDGE_CONFIG: '/etc/streamedge.yaml' } }), 'STREAMEDGE_CONFIG is not a setting but is known')
})

t.test('all problems are reported together, one per line', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'edge.json')
  await writeFile(file, JSON.stringify({ edge: { listen: 'nope', bogus: 1 } }))
  const error = loadError({
    file,
    env: { STREAMEDGE_LOG_LEVEL: 'loud', STREAMEDGE_NOPE: '1' },
    argv: { 'start.edges': '99' }
  })
  t.equal(error.code, 'CDN_ERR_CONFIG_INVALID', 'mixed problems are reported as invalid config')
  t.equal(error.lines.length, 5)
  t.match(error.message, /edge\.bogus \(from file/)
  t.match(error.message, /STREAMEDGE_NOPE \(from env\)/)
  t.match(error.message, /edge\.listen must be .* got "nope" \(from file/)
  t.match(error.message, /log\.level must be .* got "loud" \(from env STREAMEDGE_LOG_LEVEL\)/)
  t.match(error.message, /start\.edges must be an integer from 1 to 8, got "99" \(from --start\.edges\)/)
})

t.test('a bad value is reported even when a higher layer overrides it', async (t) => {
  const error = loadError({ env: { STREAMEDGE_EDGE_LISTEN: 'bad' }, argv: { 'edge.listen': ':80' } })
  t.equal(error.lines.length, 1)
  t.match(error.message, /from env STREAMEDGE_EDGE_LISTEN/)
})

t.test('empty values unset optional settings and clear lists', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'edge.yaml')
  await writeFile(file, 'edge:\n  origin: http://o\n  cache:\n    stripQueryParams: [a]\n')
  const config = loadConfig({ file, env: { STREAMEDGE_EDGE_ORIGIN: '', STREAMEDGE_EDGE_CACHE_STRIP_QUERY_PARAMS: '' } })
  t.equal(config.edge.origin, undefined, 'env "" unsets the file origin')
  t.same(config.edge.cache.stripQueryParams, [])
  await writeFile(file, 'edge:\n  origin:\n')
  t.equal(loadConfig({ file, env: {} }).edge.origin, undefined, 'YAML null is unset')
  const error = loadError({ env: { STREAMEDGE_EDGE_UPSTREAM_CONNECTIONS: '' } })
  t.match(error.message, /edge\.upstream\.connections must be an integer of at least 1, got ""/)
})

t.test('TLS settings come all together or not at all', async (t) => {
  const error = loadError({ env: { STREAMEDGE_EDGE_TLS_LISTEN: ':443', STREAMEDGE_EDGE_TLS_KEY_FILE: '/k.pem' } })
  t.equal(error.code, 'CDN_ERR_CONFIG_INVALID')
  t.equal(error.message, 'Invalid config: edge.tls.listen, edge.tls.certFile and edge.tls.keyFile must be set together, ' +
    'but only edge.tls.listen (from env STREAMEDGE_EDGE_TLS_LISTEN) and edge.tls.keyFile (from env STREAMEDGE_EDGE_TLS_KEY_FILE) are set')
  const config = loadConfig({
    env: { STREAMEDGE_EDGE_TLS_LISTEN: ':443', STREAMEDGE_EDGE_TLS_KEY_FILE: '/k.pem', STREAMEDGE_EDGE_TLS_CERT_FILE: '/c.pem' }
  })
  t.same(config.edge.tls, { listen: { host: '0.0.0.0', port: 443 }, certFile: '/c.pem', keyFile: '/k.pem' })
  const bad = loadError({ env: { STREAMEDGE_EDGE_TLS_LISTEN: 'bad' } })
  t.equal(bad.lines.length, 1, 'no group complaint on top of a bad member')
})

t.test('the result is deep-frozen', async (t) => {
  const config = loadConfig({ env: { STREAMEDGE_EDGE_CACHE_STRIP_QUERY_PARAMS: 'a' } })
  t.ok(Object.isFrozen(config))
  t.ok(Object.isFrozen(config.edge))
  t.ok(Object.isFrozen(config.edge.cache.memory))
  t.ok(Object.isFrozen(config.edge.listen))
  t.ok(Object.isFrozen(config.edge.cache.stripQueryParams))
  t.throws(() => { (config.edge.cache.memory as { maxBytes: number }).maxBytes = 1 }, TypeError)
  t.throws(() => { (config.edge.cache.stripQueryParams as string[]).push('b') }, TypeError)
  t.throws(() => { (config as unknown as Record<string, unknown>)['extra'] = 1 }, TypeError)
})

t.test('files that cannot be read or parsed', async (t) => {
  const dir = await tempDir(t)

  const yaml = join(dir, 'broken.yaml')
  await writeFile(yaml, 'edge:\n  listen: ":80"\n  cache: [unclosed\n  origin: x\n')
  const yamlError = loadError({ file: yaml })
  t.equal(yamlError.code, 'CDN_ERR_CONFIG_FILE')
  t.match(yamlError.message, new RegExp(`^Cannot parse config file ${escape(yaml)}:\\d+:\\d+: \\S`))
  t.equal(yamlError.lines.length, 1, 'one line, no code frame')

  const duplicate = join(dir, 'dup.yaml')
  await writeFile(duplicate, 'log:\n  level: info\n  level: debug\n')
  t.match(loadError({ file: duplicate }).message, `Cannot parse config file ${duplicate}:3:3: Map keys must be unique`)

  const json = join(dir, 'broken.json')
  await writeFile(json, '{\n  "edge": {\n    "listen": ":80",\n  }\n}\n')
  const jsonError = loadError({ file: json })
  t.equal(jsonError.code, 'CDN_ERR_CONFIG_FILE')
  t.equal(jsonError.message, `Cannot parse config file ${json}:4:3: Expected double-quoted property name`, 'line and column of the stray }')

  const truncated = join(dir, 'truncated.json')
  await writeFile(truncated, '{"edge": {')
  t.match(loadError({ file: truncated }).message, `Cannot parse config file ${truncated}:1:11: `)

  const badToken = join(dir, 'token.json')
  await writeFile(badToken, '{\n  "log": {\n    "level": info\n  }\n}\n')
  t.equal(loadError({ file: badToken }).message, `Cannot parse config file ${badToken}:3:14: Unexpected token 'i'`,
    'located even when JSON.parse gives no position')

  const missing = join(dir, 'missing.yaml')
  const missingError = loadError({ file: missing })
  t.equal(missingError.code, 'CDN_ERR_CONFIG_FILE')
  t.match(missingError.message, `Cannot read config file ${missing}: ENOENT`)

  const toml = join(dir, 'edge.toml')
  await writeFile(toml, 'x = 1')
  t.equal(loadError({ file: toml }).message, `Config file ${toml} must end in .yaml, .yml or .json`)

  const list = join(dir, 'list.yaml')
  await writeFile(list, '- edge\n- log\n')
  t.equal(loadError({ file: list }).message, `Config file ${list} must hold a mapping of sections, got ["edge","log"]`)
})

t.test('relative file paths resolve against cwd', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'edge.yaml'), 'edge:\n  cacheDir: c\n')
  t.equal(loadConfig({ file: 'edge.yaml', cwd: dir, env: {} }).edge.cacheDir, join(dir, 'c'))
})

t.test('misuse of the options throws TypeError', async (t) => {
  t.throws(() => loadConfig({ file: '' }), new TypeError('Expected options.file to be a non-empty string, got ""'))
  t.throws(() => loadConfig({ argv: [] as unknown as Record<string, unknown> }), TypeError)
  t.throws(() => loadConfig({ env: 'x' as unknown as NodeJS.ProcessEnv }), TypeError)
})

t.test('requireSettings names what is missing and how to give it', async (t) => {
  const config = loadConfig({ env: {} })
  t.throws(() => requireSettings(config, ['edge.origin'], { aliases: { origin: 'edge.origin' } }), {
    code: 'CDN_ERR_CONFIG_INVALID',
    message: 'edge.origin is required: give --origin URL or set it in the config file'
  })
  t.throws(() => requireSettings(config, ['edge.origin', 'edge.tls.certFile']), {
    message: 'edge.origin is required: give --edge.origin URL or set it in the config file\n' +
      'edge.tls.certFile is required: give --edge.tls.certFile FILE or set it in the config file'
  })
  const complete = loadConfig({ env: { STREAMEDGE_EDGE_ORIGIN: 'http://o' } })
  requireSettings(complete, ['edge.origin'])
  const origin: string = complete.edge.origin // narrowed by the assertion: checked by tsc
  t.equal(origin, 'http://o/')
  t.equal(getSetting(complete, 'edge.cache.memory.maxBytes'), 256 * MiB)
})

t.test('every example config loads', async (t) => {
  const files = (await readdir(EXAMPLES_DIR)).filter((name) => /\.(ya?ml|json)$/.test(name))
  t.ok(files.includes('edge.yaml') && files.includes('edge-minimal.json'), 'the examples exist')
  // An example is for the command its name starts with (control-plane.yaml), else for the edge.
  const commands = describeCommands().map((c) => c.name).sort((a, b) => b.length - a.length)
  for (const name of files) {
    const config = loadConfig({ file: resolve(EXAMPLES_DIR, name), env: {} })
    const command = commands.find((c) => name.startsWith(`${c}.`) || name.startsWith(`${c}-`)) ?? 'edge'
    for (const setting of paramsRequiredBy(command)) {
      t.not(getSetting(config, setting), undefined, `${name} loads and sets ${setting} (required by ${command})`)
    }
  }
})

function escape (text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
