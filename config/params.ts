/**
 * The table of every setting (varnish `include/tbl/params.h`, fastify `defaultInitOptions`).
 *
 * One row per setting. The TypeScript config types, the validator, the env-var names, the CLI
 * flags and docs/config.md are all derived from this table, so adding a setting is adding a row.
 * Defaults are written as an operator would write them (`'256MiB'`) and go through the same
 * parser as every other input, so a bad default fails the tests instead of shipping.
 */

import { hostname } from 'node:os'
import { isIPv4, isIPv6 } from 'node:net'
import { resolve } from 'node:path'

/** Value types a setting can have; each has one parser below. */
export type ParamType =
  | 'string' | 'path' | 'int' | 'bytes' | 'bool' | 'enum' | 'url' | 'url-list' | 'hostport' | 'string-list'

/** A parsed listen address. `host` is bare (no IPv6 brackets), ready for `server.listen(port, host)`. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/** The TypeScript type each ParamType parses to. */
export interface ParamValueTypes {
  string: string
  path: string
  int: number
  bytes: number
  bool: boolean
  enum: string
  url: string
  'url-list': readonly string[]
  hostport: HostPort
  'string-list': readonly string[]
}

/** A default as written in the table (raw input), or a function computing one at load time. */
export type RawDefault = string | number | boolean | readonly string[]

/** One row of the table. */
export interface ParamSpec {
  /** Dotted name; the last part carries the unit (`timeoutMs`, `maxBytes`). */
  readonly name: string
  readonly type: ParamType
  /** Absent means the setting is optional and unset by default. */
  readonly default?: RawDefault | (() => RawDefault)
  /** How docs show a computed default. */
  readonly defaultDoc?: string
  /** Inclusive bounds for `int` and `bytes`. */
  readonly min?: number
  readonly max?: number
  /** Allowed values of an `enum`. */
  readonly values?: readonly string[]
  /** A `string` must match this; `patternDoc` says how in words. */
  readonly pattern?: RegExp
  readonly patternDoc?: string
  readonly unit?: string
  /** Value placeholder in `--help` and messages (defaults to one per type). */
  readonly placeholder?: string
  /** CLI commands that refuse to start without this setting. */
  readonly requiredBy?: readonly string[]
  readonly doc: string
}

/** Binary units (IEC): KiB = 1024. Decimal units (SI): KB = 1000. */
export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB
export const TiB = 1024 * GiB

/** `setTimeout` fires at once for delays above 2^31-1 ms, so no `*Ms` setting may exceed it. */
export const MAX_TIMER_MS = 2_147_483_647

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** Every setting. Sections: `log`, `edge`, `start` (the local demo). */
export const PARAMS = [
  { name: 'log.level', type: 'enum', values: LOG_LEVELS, default: 'info', doc: 'Log level for pino JSON logs on stdout.' },
  { name: 'log.access', type: 'bool', default: true, doc: 'Write one JSON access-log line per request.' },

  {
    name: 'edge.id',
    type: 'string',
    default: () => hostname(),
    defaultDoc: 'the host name',
    pattern: /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    patternDoc: "letters, digits, '.', '_' and '-'",
    placeholder: 'ID',
    doc: 'Node id reported in logs, metrics and Cache-Status.'
  },
  { name: 'edge.listen', type: 'hostport', default: '0.0.0.0:8080', doc: 'HTTP listen address.' },
  { name: 'edge.tls.listen', type: 'hostport', doc: 'HTTPS listen address; set it, edge.tls.certFile and edge.tls.keyFile together or none of them.' },
  { name: 'edge.tls.certFile', type: 'path', placeholder: 'FILE', doc: 'PEM certificate chain.' },
  { name: 'edge.tls.keyFile', type: 'path', placeholder: 'FILE', doc: 'PEM private key.' },
  { name: 'edge.origin', type: 'url', requiredBy: ['edge'], doc: 'Upstream origin base URL.' },
  { name: 'edge.cacheDir', type: 'path', default: './var/cache/edge', placeholder: 'DIR', doc: 'Directory of the disk tier (created if missing).' },

  { name: 'edge.cache.memory.maxBytes', type: 'bytes', default: '256MiB', min: 1, doc: 'Memory tier budget (bodies + metadata).' },
  { name: 'edge.cache.memory.maxObjectBytes', type: 'bytes', default: '16MiB', min: 1, doc: 'Objects larger than this skip the memory tier.' },
  { name: 'edge.cache.disk.maxBytes', type: 'bytes', default: '10GiB', min: 1, doc: 'Disk tier budget.' },
  {
    name: 'edge.cache.disk.fsync',
    type: 'bool',
    default: false,
    doc: 'fsync each object before it becomes visible (power-loss safety; process crashes are safe without it).'
  },
  { name: 'edge.cache.maxObjectBytes', type: 'bytes', default: '1GiB', min: 1, doc: 'Larger responses are streamed but never stored.' },
  {
    name: 'edge.cache.lockTimeoutMs',
    type: 'int',
    default: 5000,
    min: 1,
    max: MAX_TIMER_MS,
    unit: 'ms',
    doc: "A request waiting for another request's fill longer than this (before response headers arrive) goes upstream on its own."
  },
  { name: 'edge.cache.stripQueryParams', type: 'string-list', default: [], doc: 'Query parameters removed from the cache key (e.g. tokens).' },
  { name: 'edge.cache.checkMpegTs', type: 'bool', default: true, doc: 'Refuse to store .ts bodies that fail the MPEG-TS sync-byte check.' },
  { name: 'edge.cache.negativeTtlSeconds', type: 'int', default: 10, min: 0, unit: 's', doc: 'Lifetime of 404/410 responses without explicit freshness (negative caching); 0 disables.' },
  { name: 'edge.cache.negativeTtlMaxSeconds', type: 'int', default: 60, min: 0, unit: 's', doc: 'Ceiling on the lifetime of any 404/410 response, whatever the origin says.' },
  { name: 'edge.cache.staleIfErrorSeconds', type: 'int', default: 0, min: 0, unit: 's', doc: 'Grace: serve stale this long past expiry when upstream fails, even without stale-if-error (never for must-revalidate).' },
  { name: 'edge.cache.allowSetCookie', type: 'bool', default: false, doc: 'Store responses that carry Set-Cookie (stored without the cookie; only the client that caused the fill gets it).' },
  { name: 'edge.cache.maxRanges', type: 'int', default: 16, min: 1, doc: 'Most ranges answered as multipart/byteranges; requests with more get the whole body (200).' },
  { name: 'edge.admin.token', type: 'string', doc: 'Bearer token for /admin/ endpoints (purge). Unset: the endpoints answer 404.' },

  { name: 'edge.upstream.connectTimeoutMs', type: 'int', default: 3000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Time to open a connection to an upstream.' },
  { name: 'edge.upstream.firstByteTimeoutMs', type: 'int', default: 10000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Time to response headers.' },
  { name: 'edge.upstream.idleTimeoutMs', type: 'int', default: 10000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Max gap between body bytes.' },
  { name: 'edge.upstream.connections', type: 'int', default: 128, min: 1, doc: 'Max connections per upstream host.' },
  { name: 'edge.upstream.keepAliveTimeoutMs', type: 'int', default: 30000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Idle upstream connections are closed after this long.' },

  { name: 'edge.server.keepAliveTimeoutMs', type: 'int', default: 5000, min: 1, max: MAX_TIMER_MS, unit: 'ms', doc: 'Idle client connections are closed after this long.' },
  {
    name: 'edge.server.headersTimeoutMs',
    type: 'int',
    default: 10000,
    min: 1,
    max: MAX_TIMER_MS,
    unit: 'ms',
    doc: 'A client must send the complete request headers within this time.'
  },
  {
    name: 'edge.server.shutdownGraceMs',
    type: 'int',
    default: 10000,
    min: 0,
    max: MAX_TIMER_MS,
    unit: 'ms',
    doc: 'On SIGTERM stop accepting, let in-flight responses finish up to this long.'
  },

  { name: 'start.edges', type: 'int', default: 2, min: 1, max: 8, doc: 'Number of edges the demo starts.' },
  { name: 'start.listenHost', type: 'string', default: '127.0.0.1', placeholder: 'HOST', doc: 'Host the demo binds (ports are chosen automatically).' },
  { name: 'start.basePort', type: 'int', default: 0, min: 0, max: 65535, doc: '0 = random free ports; otherwise consecutive ports from here.' }
] as const satisfies readonly ParamSpec[]

/** All settings that must be set together or not at all (checked after parsing). */
export const PARAM_GROUPS: readonly (readonly ParamName[])[] = [
  ['edge.tls.listen', 'edge.tls.certFile', 'edge.tls.keyFile']
]

// ---- Types derived from the table ----------------------------------------------------------

type Row = (typeof PARAMS)[number]

/** Every dotted setting name. */
export type ParamName = Row['name']

type RowNamed<N extends ParamName> = Extract<Row, { readonly name: N }>
type ValueOfRow<R> = R extends { readonly type: 'enum', readonly values: readonly (infer V)[] }
  ? V
  : R extends { readonly type: infer T extends ParamType } ? ParamValueTypes[T] : never
type UnsetOfRow<R> = R extends { readonly default: unknown } ? never : undefined

/** The parsed type of one setting; `undefined` is possible only for settings without a default. */
export type ParamValue<N extends ParamName> = ValueOfRow<RowNamed<N>> | UnsetOfRow<RowNamed<N>>

type Head<N extends string> = N extends `${infer H}.${string}` ? H : N
type Rest<N extends string, H extends string> = N extends `${H}.${infer R}` ? R : never
type Tree<N extends string, P extends string> = {
  readonly [H in Head<N>]: [Rest<N, H>] extends [never]
    ? ParamValue<Extract<`${P}${H}`, ParamName>>
    : Tree<Rest<N, H>, `${P}${H}.`>
}

/** The whole validated configuration, nested by the dots in the names. */
export type StreamedgeConfig = Tree<ParamName, ''>
/** The `log` section. */
export type LogConfig = StreamedgeConfig['log']
/** The `edge` section (edge role). */
export type EdgeConfig = StreamedgeConfig['edge']
/** The `start` section (local demo). */
export type StartConfig = StreamedgeConfig['start']

// ---- Lookups -------------------------------------------------------------------------------

const BY_NAME: ReadonlyMap<string, ParamSpec> = new Map(PARAMS.map((row) => [row.name, row]))
const SECTIONS: ReadonlySet<string> = new Set(PARAMS.flatMap((row) => {
  const parts = row.name.split('.')
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'))
}))

/** The row of a setting, or undefined for an unknown name. */
export function getParam (name: string): ParamSpec | undefined {
  return BY_NAME.get(name)
}

/** True for a dotted prefix that holds settings (`edge`, `edge.cache`), as opposed to a setting. */
export function isSection (name: string): boolean {
  return SECTIONS.has(name)
}

/** Names of the sections at the top of the config (`log`, `edge`, `start`). */
export function topSections (): readonly string[] {
  return [...new Set(PARAMS.map((row) => row.name.split('.')[0] ?? ''))]
}

/** `edge.cache.memory.maxBytes` → `STREAMEDGE_EDGE_CACHE_MEMORY_MAX_BYTES`. */
export function envName (name: string): string {
  const snake = name.split('.').map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2')).join('_')
  return `STREAMEDGE_${snake.toUpperCase()}`
}

/** The names a CLI command refuses to run without (rows whose `requiredBy` lists it). */
export function paramsRequiredBy (command: string): readonly ParamName[] {
  return PARAMS.filter((row) => 'requiredBy' in row && (row.requiredBy as readonly string[]).includes(command)).map((row) => row.name)
}

/** Value placeholder for `--help` and messages (`URL`, `SIZE`, `HOST:PORT`). */
export function placeholderOf (spec: ParamSpec): string {
  if (spec.placeholder !== undefined) return spec.placeholder
  return PLACEHOLDERS[spec.type]
}

const PLACEHOLDERS: Readonly<Record<ParamType, string>> = {
  string: 'STRING',
  path: 'PATH',
  int: 'N',
  bytes: 'SIZE',
  bool: 'BOOL',
  enum: 'VALUE',
  url: 'URL',
  'url-list': 'URL,...',
  hostport: 'HOST:PORT',
  'string-list': 'A,B,...'
}

// ---- Parsers -------------------------------------------------------------------------------

/** Outcome of parsing one raw value: the value, or what was expected (for the error message). */
export type ParseResult =
  | { readonly ok: true, readonly value: unknown }
  | { readonly ok: false, readonly expected: string }

const BYTE_UNITS: Readonly<Record<string, number>> = {
  '': 1,
  b: 1,
  k: KiB,
  kib: KiB,
  kb: 1e3,
  m: MiB,
  mib: MiB,
  mb: 1e6,
  g: GiB,
  gib: GiB,
  gb: 1e9,
  t: TiB,
  tib: TiB,
  tb: 1e12
}
const BYTES_RE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i

/**
 * Parses a byte size: a non-negative integer, or a number with a unit. KiB/MiB/GiB/TiB and the
 * bare K/M/G/T (as in nginx and varnish) are binary; KB/MB/GB/TB are decimal. Units ignore case.
 * A fraction needs a unit and is rounded down to whole bytes (`1.5KiB` = 1536). Undefined if invalid.
 */
export function parseBytes (raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) && raw >= 0 ? raw : undefined
  if (typeof raw !== 'string') return undefined
  const match = BYTES_RE.exec(raw.trim())
  if (match === null) return undefined
  const [, digits = '', unitText = ''] = match
  const unit = BYTE_UNITS[unitText.toLowerCase()]
  if (unit === undefined) return undefined
  if (digits.includes('.') && unit === 1) return undefined
  const bytes = Math.floor(Number(digits) * unit)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** Formats a byte count with the largest binary unit that divides it exactly (`268435456` → `256MiB`). */
export function formatBytes (bytes: number): string {
  for (const [unit, size] of [['TiB', TiB], ['GiB', GiB], ['MiB', MiB], ['KiB', KiB]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return `${bytes}B`
}

const HOSTPORT_RE = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/
const HOSTNAME_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/

/** Parses `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all IPv4 interfaces). Undefined if invalid. */
export function parseHostPort (raw: unknown): HostPort | undefined {
  if (typeof raw !== 'string') return undefined
  const match = HOSTPORT_RE.exec(raw.trim())
  if (match === null) return undefined
  const [, v6, name, portText = ''] = match
  const port = Number(portText)
  if (port > 65535) return undefined
  if (v6 !== undefined) return isIPv6(v6) ? { host: v6, port } : undefined
  if (name === undefined || name === '') return { host: '0.0.0.0', port }
  return isIPv4(name) || HOSTNAME_RE.test(name) ? { host: name, port } : undefined
}

/** Parses an http: or https: URL and returns its normalised href. Undefined if invalid. */
export function parseHttpUrl (raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined
  const url = URL.canParse(raw.trim()) ? new URL(raw.trim()) : undefined
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) return undefined
  return url.href
}

/** Parses `true`/`false`, or from text `"true"`/`"false"`/`"1"`/`"0"`. Undefined if invalid. */
export function parseBool (raw: unknown): boolean | undefined {
  if (typeof raw === 'boolean') return raw
  if (typeof raw !== 'string') return undefined
  const text = raw.trim().toLowerCase()
  if (text === 'true' || text === '1') return true
  if (text === 'false' || text === '0') return false
  return undefined
}

/** Parses an integer given as a number or as decimal digits. Undefined if invalid. */
export function parseInteger (raw: unknown): number | undefined {
  if (typeof raw === 'number') return Number.isSafeInteger(raw) ? raw : undefined
  if (typeof raw !== 'string' || !/^-?\d+$/.test(raw.trim())) return undefined
  const value = Number(raw.trim())
  return Number.isSafeInteger(value) ? value : undefined
}

/** Splits a comma-separated string (entries trimmed, empty ones dropped) or checks an array of strings. */
export function parseList (raw: unknown): readonly string[] | undefined {
  if (typeof raw === 'string') return raw.split(',').map((item) => item.trim()).filter((item) => item !== '')
  if (!Array.isArray(raw) || !raw.every((item) => typeof item === 'string')) return undefined
  return raw.map((item: string) => item.trim())
}

/**
 * Parses one raw value (from a file, env, argv or the default) for `spec`. An empty value
 * (`''` or `null`) unsets an optional setting and is the empty list for list types.
 * Relative paths are resolved against `baseDir`.
 */
export function parseParamValue (spec: ParamSpec, raw: unknown, baseDir: string): ParseResult {
  const empty = raw === null || (typeof raw === 'string' && raw.trim() === '')
  if (empty && !('default' in spec)) return { ok: true, value: undefined }
  if (empty && (spec.type === 'string-list' || spec.type === 'url-list')) return { ok: true, value: [] }
  const value = PARSERS[spec.type](raw, spec, baseDir)
  return value === undefined ? { ok: false, expected: expectedOf(spec) } : { ok: true, value }
}

type Parser = (raw: unknown, spec: ParamSpec, baseDir: string) => unknown

const PARSERS: Readonly<Record<ParamType, Parser>> = {
  string: (raw, spec) => {
    if (typeof raw !== 'string' || raw.trim() === '') return undefined
    return spec.pattern === undefined || spec.pattern.test(raw.trim()) ? raw.trim() : undefined
  },
  path: (raw, _spec, baseDir) => {
    if (typeof raw !== 'string' || raw.trim() === '' || raw.includes('\0')) return undefined
    return resolve(baseDir, raw.trim())
  },
  int: (raw, spec) => inRange(parseInteger(raw), spec),
  bytes: (raw, spec) => inRange(parseBytes(raw), spec),
  bool: (raw) => parseBool(raw),
  enum: (raw, spec) => typeof raw === 'string' && spec.values?.includes(raw.trim()) === true ? raw.trim() : undefined,
  url: (raw) => parseHttpUrl(raw),
  'url-list': (raw) => {
    const items = parseList(raw)
    const urls = items?.map(parseHttpUrl)
    return urls?.every((url) => url !== undefined) === true ? urls : undefined
  },
  hostport: (raw) => parseHostPort(raw),
  'string-list': (raw) => parseList(raw)
}

function inRange (value: number | undefined, spec: ParamSpec): number | undefined {
  if (value === undefined) return undefined
  if (value < (spec.min ?? 0) || value > (spec.max ?? Number.MAX_SAFE_INTEGER)) return undefined
  return value
}

/** What a valid value looks like, for "X must be <expected>, got Y" messages. */
export function expectedOf (spec: ParamSpec): string {
  switch (spec.type) {
    case 'string': return spec.patternDoc === undefined ? 'a non-empty string' : `a non-empty string of ${spec.patternDoc}`
    case 'path': return 'a non-empty file system path'
    case 'int': return intExpected(spec)
    case 'bytes': return `a byte size like 512MiB${bytesRangeText(spec)}`
    case 'bool': return 'true or false'
    case 'enum': return `one of ${(spec.values ?? []).join(', ')}`
    case 'url': return 'an http: or https: URL'
    case 'url-list': return 'a list of http: or https: URLs (comma-separated or an array)'
    case 'hostport': return 'HOST:PORT, [IPv6]:PORT or :PORT with a port from 0 to 65535'
    case 'string-list': return 'a list of strings (comma-separated or an array)'
  }
}

function intExpected (spec: ParamSpec): string {
  const min = spec.min ?? 0
  if (spec.max !== undefined) return `an integer from ${min} to ${spec.max}`
  return min === 0 ? 'a non-negative integer' : `an integer of at least ${min}`
}

function bytesRangeText (spec: ParamSpec): string {
  const min = spec.min ?? 0
  if (spec.max !== undefined) return ` (from ${formatBytes(min)} to ${formatBytes(spec.max)})`
  return min === 0 ? '' : ` (at least ${formatBytes(min)})`
}

// ---- Docs ----------------------------------------------------------------------------------

/** One setting as docs and `--help` show it. */
export interface ParamInfo {
  readonly name: ParamName
  readonly type: ParamType
  /** Type with range, unit or values: `int 1..8`, `int ≥ 1 (ms)`, `enum: info, debug`. */
  readonly typeDoc: string
  /** Default as written in the table, or undefined when the setting is unset by default. */
  readonly default: string | undefined
  /** False when `default` is prose (a computed default, an empty list) rather than a value to type. */
  readonly defaultIsLiteral: boolean
  readonly env: string
  readonly flag: string
  readonly requiredBy: readonly string[]
  readonly doc: string
}

/** The table in display form, in table order (for docs/config.md and `--help`). */
export function describeParams (): readonly ParamInfo[] {
  return PARAMS.map((row): ParamInfo => {
    const spec: ParamSpec = row
    return {
      name: row.name,
      type: row.type,
      typeDoc: typeDocOf(spec),
      default: defaultDocOf(spec),
      defaultIsLiteral: spec.defaultDoc === undefined && !(Array.isArray(spec.default) && spec.default.length === 0),
      env: envName(row.name),
      flag: `--${row.name}`,
      requiredBy: spec.requiredBy ?? [],
      doc: row.doc
    }
  })
}

function typeDocOf (spec: ParamSpec): string {
  if (spec.type === 'enum') return `enum: ${(spec.values ?? []).join(', ')}`
  if (spec.type !== 'int' && spec.type !== 'bytes') return spec.type
  const format = spec.type === 'bytes' ? formatBytes : String
  const min = spec.min ?? 0
  const range = spec.max !== undefined && spec.max !== MAX_TIMER_MS ? ` ${format(min)}..${format(spec.max)}` : ` ≥ ${format(min)}`
  return `${spec.type}${range}${spec.unit === undefined ? '' : ` (${spec.unit})`}`
}

function defaultDocOf (spec: ParamSpec): string | undefined {
  if (spec.defaultDoc !== undefined) return spec.defaultDoc
  const value = spec.default
  if (value === undefined || typeof value === 'function') return undefined
  if (Array.isArray(value)) return value.length === 0 ? 'empty list' : value.join(',')
  return String(value)
}
