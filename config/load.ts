/**
 * Loads the configuration: defaults < file < env < argv, every layer validated against the
 * param table, unknown keys rejected, all problems reported together in one error, result
 * deep-frozen (fastify's initial-config-validation, varnish's param table).
 *
 * Only `main.ts` files and the CLI call this; everything else takes an options object.
 */

import { readFileSync } from 'node:fs'
import { dirname, extname, resolve } from 'node:path'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { CdnError, showValue } from '../lib/errors.ts'
import {
  PARAMS, PARAM_GROUPS, envName, getParam, isSection, parseParamValue, placeholderOf
} from './params.ts'
import type { ParamName, ParamSpec, ParamValue, StreamedgeConfig } from './params.ts'

export { describeParams, PARAMS } from './params.ts'

/** Where the config comes from. Every field is optional; `env` defaults to `process.env`. */
export interface LoadConfigOptions {
  /** YAML (`.yaml`, `.yml`) or JSON (`.json`) file, chosen by extension. */
  readonly file?: string | undefined
  readonly env?: NodeJS.ProcessEnv | undefined
  /** Flag values by dotted name (`{ 'edge.listen': ':80' }`) or nested (`{ edge: { listen: ':80' } }`). */
  readonly argv?: Readonly<Record<string, unknown>> | undefined
  /** Base for relative paths given in env, argv and defaults (file paths are relative to the file). */
  readonly cwd?: string | undefined
}

/** Env var that names the config file; the only STREAMEDGE_* variable that is not a setting. */
export const CONFIG_FILE_ENV = 'STREAMEDGE_CONFIG'

const ENV_PREFIX = 'STREAMEDGE_'
const ENV_TO_NAME: ReadonlyMap<string, ParamName> = new Map(PARAMS.map((row) => [envName(row.name), row.name]))
const ARGV_IGNORED = new Set(['_', '$0'])
/** Every setting and section name, for "did you mean" hints. */
const KNOWN_KEYS: readonly string[] = [...new Set(PARAMS.flatMap((row) => {
  const parts = row.name.split('.')
  return parts.map((_, i) => parts.slice(0, i + 1).join('.'))
}))]

type Source =
  | { readonly kind: 'default' }
  | { readonly kind: 'file', readonly file: string }
  | { readonly kind: 'env', readonly key: string }
  | { readonly kind: 'argv' }

interface Given {
  readonly name: ParamName
  readonly raw: unknown
  readonly source: Source
}

interface Problem {
  readonly unknownKey: boolean
  readonly line: string
}

/**
 * Builds the validated, deep-frozen config. Throws one CdnError listing every problem, one
 * per line: `CDN_ERR_CONFIG_UNKNOWN_KEY` when all are unknown keys, else `CDN_ERR_CONFIG_INVALID`;
 * `CDN_ERR_CONFIG_FILE` when the file cannot be read or parsed.
 */
export function loadConfig (options: LoadConfigOptions = {}): Readonly<StreamedgeConfig> {
  checkOptions(options)
  const cwd = options.cwd ?? process.cwd()
  const problems: Problem[] = []
  const layers: { readonly given: readonly Given[], readonly baseDir: string }[] = [
    { given: defaultLayer(), baseDir: cwd }
  ]
  if (options.file !== undefined) {
    layers.push({ given: fileLayer(options.file, cwd, problems), baseDir: dirname(resolve(cwd, options.file)) })
  }
  layers.push({ given: envLayer(options.env ?? process.env, problems), baseDir: cwd })
  layers.push({ given: argvLayer(options.argv ?? {}, problems), baseDir: cwd })

  const values = new Map<ParamName, { value: unknown, source: Source }>()
  const failed = new Set<ParamName>()
  for (const layer of layers) {
    for (const { name, raw, source } of layer.given) {
      const spec: ParamSpec = getParam(name) as ParamSpec
      const result = parseParamValue(spec, raw, layer.baseDir)
      if (result.ok) {
        values.set(name, { value: result.value, source })
        continue
      }
      failed.add(name)
      problems.push(invalid(`${name} must be ${result.expected}, got ${showValue(raw)} ${sourceText(source, name)}`))
    }
  }
  problems.push(...groupProblems(values, failed))
  problems.push(...shieldHopProblems(values, failed))
  if (problems.length > 0) throw configError(problems)
  return deepFreeze(buildTree(values)) as Readonly<StreamedgeConfig>
}

/** Options of {@link requireSettings}. */
export interface RequireSettingsOptions {
  /** Short flags (`{ origin: 'edge.origin' }`) the message should suggest instead of the dotted one. */
  readonly aliases?: Readonly<Record<string, ParamName>>
}

type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never
type PathValue<P extends string, V> = P extends `${infer H}.${infer R}`
  ? { readonly [K in H]: PathValue<R, V> }
  : { readonly [K in P]: V }

/** The config type once `N` are known to be set. */
export type WithSettings<N extends ParamName> =
  UnionToIntersection<N extends unknown ? PathValue<N, Exclude<ParamValue<N>, undefined>> : never>

/**
 * Throws `CDN_ERR_CONFIG_INVALID` naming every setting of `names` that is unset
 * (`edge.origin is required: give --origin URL or set it in the config file`).
 * Narrows the config type, so `config.edge.origin` is a `string` afterwards.
 */
export function requireSettings<const N extends readonly ParamName[]> (
  config: Readonly<StreamedgeConfig>,
  names: N,
  options: RequireSettingsOptions = {}
): asserts config is Readonly<StreamedgeConfig> & WithSettings<N[number]> {
  const flags = new Map(Object.entries(options.aliases ?? {}).map(([alias, name]) => [name, alias]))
  const problems: Problem[] = names
    .filter((name) => getSetting(config, name) === undefined)
    .map((name) => {
      const spec: ParamSpec = getParam(name) as ParamSpec
      const flag = `--${flags.get(name) ?? name} ${placeholderOf(spec)}`
      return { unknownKey: false, line: `${name} is required: give ${flag} or set it in the config file` }
    })
  if (problems.length > 0) throw configError(problems)
}

/** Reads one setting by its dotted name. */
export function getSetting<N extends ParamName> (config: Readonly<StreamedgeConfig>, name: N): ParamValue<N> {
  let node: unknown = config
  for (const part of name.split('.')) node = (node as Record<string, unknown>)[part]
  return node as ParamValue<N>
}

function checkOptions (options: LoadConfigOptions): void {
  if (options.file !== undefined && (typeof options.file !== 'string' || options.file === '')) {
    throw new TypeError(`Expected options.file to be a non-empty string, got ${showValue(options.file)}`)
  }
  if (options.env !== undefined && (typeof options.env !== 'object' || options.env === null)) {
    throw new TypeError(`Expected options.env to be an object, got ${showValue(options.env)}`)
  }
  if (options.argv !== undefined && (typeof options.argv !== 'object' || options.argv === null || Array.isArray(options.argv))) {
    throw new TypeError(`Expected options.argv to be an object, got ${showValue(options.argv)}`)
  }
}

function defaultLayer (): Given[] {
  const source: Source = { kind: 'default' }
  return PARAMS.flatMap((row): Given[] => {
    if (!('default' in row)) return []
    const raw = typeof row.default === 'function' ? row.default() : row.default
    return [{ name: row.name, raw, source }]
  })
}

function fileLayer (file: string, cwd: string, problems: Problem[]): Given[] {
  const data = readConfigFile(file, cwd)
  const given: Given[] = []
  walk(data, '', { kind: 'file', file }, given, problems)
  return given
}

/** Reads and parses the file; anything wrong here is fatal (nothing else can be checked sensibly). */
function readConfigFile (file: string, cwd: string): Record<string, unknown> {
  const ext = extname(file).toLowerCase()
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') {
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Config file ${file} must end in .yaml, .yml or .json`)
  }
  let text: string
  try {
    text = readFileSync(resolve(cwd, file), 'utf8')
  } catch (err) {
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Cannot read config file ${file}: ${(err as Error).message}`, { cause: err })
  }
  const data = ext === '.json' ? parseJsonFile(file, text) : parseYamlFile(file, text)
  if (data === null || data === undefined) return {}
  if (!isPlainObject(data)) {
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Config file ${file} must hold a mapping of sections, got ${showValue(data)}`)
  }
  return data
}

function parseYamlFile (file: string, text: string): unknown {
  try {
    return parseYaml(text, { prettyErrors: true })
  } catch (err) {
    if (!(err instanceof YAMLParseError)) throw err
    const pos = err.linePos?.[0]
    const where = pos === undefined ? '' : `:${pos.line}:${pos.col}`
    const reason = (err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Cannot parse config file ${file}${where}: ${reason}`, { cause: err })
  }
}

function parseJsonFile (file: string, text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    const message = (err as Error).message
    const { line, col } = lineCol(text, jsonErrorOffset(text, message))
    // V8 quotes a multi-line snippet or restates the offset; the line:col says it better.
    const reason = message.replace(/ in JSON at position \d+.*$/s, '').replace(/, .*is not valid JSON$/s, '')
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Cannot parse config file ${file}:${line}:${col}: ${reason}`, { cause: err })
  }
}

/**
 * Offset of the first bad character in invalid JSON. Node 20's JSON.parse does not always say
 * where ("Unexpected token '}', ... is not valid JSON"); then find the shortest prefix that fails
 * before its end: a prefix can only get worse as it grows.
 */
function jsonErrorOffset (text: string, message: string): number {
  const reported = jsonErrorPosition(message)
  if (reported !== undefined) return reported
  let low = 0
  let high = text.length
  while (low < high) {
    const mid = (low + high) >>> 1
    if (failsBefore(text, mid)) high = mid
    else low = mid + 1
  }
  return Math.max(0, low - 1)
}

function failsBefore (text: string, end: number): boolean {
  try {
    JSON.parse(text.slice(0, end))
    return false
  } catch (err) {
    const message = (err as Error).message
    if (message.includes('end of JSON input')) return false
    const position = jsonErrorPosition(message)
    return position === undefined || position < end
  }
}

function jsonErrorPosition (message: string): number | undefined {
  const match = /at position (\d+)/.exec(message)
  return match === null ? undefined : Number(match[1])
}

function lineCol (text: string, offset: number): { line: number, col: number } {
  const before = text.slice(0, offset)
  const line = before.split('\n').length
  return { line, col: offset - before.lastIndexOf('\n') }
}

/** Flattens nested sections and dotted keys into settings; reports keys that are neither. */
function walk (node: Record<string, unknown>, prefix: string, source: Source, out: Given[], problems: Problem[]): void {
  for (const [key, value] of Object.entries(node)) {
    if (value === undefined) continue
    const name = prefix + key
    const spec = getParam(name)
    if (spec !== undefined) {
      out.push({ name: spec.name as ParamName, raw: value, source })
      continue
    }
    if (!isSection(name)) {
      problems.push(unknownKey(`${name} ${sourceText(source, name)}`, suggest(name, KNOWN_KEYS)))
      continue
    }
    if (value === null) continue // a YAML section whose settings are all commented out
    if (isPlainObject(value)) walk(value, `${name}.`, source, out, problems)
    else problems.push(invalid(`${name} must be a section (a mapping of settings), got ${showValue(value)} ${sourceText(source, name)}`))
  }
}

function envLayer (env: NodeJS.ProcessEnv, problems: Problem[]): Given[] {
  const given: Given[] = []
  for (const [key, raw] of Object.entries(env)) {
    if (!key.startsWith(ENV_PREFIX) || key === CONFIG_FILE_ENV || raw === undefined) continue
    const name = ENV_TO_NAME.get(key)
    if (name === undefined) {
      problems.push(unknownKey(`${key} (from env)`, suggest(key, [...ENV_TO_NAME.keys()])))
      continue
    }
    given.push({ name, raw, source: { kind: 'env', key } })
  }
  return given
}

function argvLayer (argv: Readonly<Record<string, unknown>>, problems: Problem[]): Given[] {
  const given: Given[] = []
  const flags = Object.fromEntries(Object.entries(argv).filter(([key]) => !ARGV_IGNORED.has(key)))
  walk(flags, '', { kind: 'argv' }, given, problems)
  return given
}

function groupProblems (values: ReadonlyMap<ParamName, { value: unknown, source: Source }>, failed: ReadonlySet<ParamName>): Problem[] {
  return PARAM_GROUPS.flatMap((group) => {
    if (group.some((name) => failed.has(name))) return []
    const set = group.filter((name) => values.get(name)?.value !== undefined)
    if (set.length === 0 || set.length === group.length) return []
    const given = set.map((name) => `${name} ${sourceText((values.get(name) as { source: Source }).source, name)}`)
    return [invalid(`${listText(group)} must be set together, but only ${listText(given)} ${set.length === 1 ? 'is' : 'are'} set`)]
  })
}

/**
 * An edge must wait longer for a shield's response head than the shield waits for its origin's:
 * otherwise it gives up on a shield that is about to fail over to another origin or serve stale,
 * and goes around it (next shield, or the origin itself), defeating failover, stale serving and
 * collapsing. Checked only where one config sets up both hops: edge.shields is set and some
 * shield.* setting is given. Separate configs per role cannot see each other.
 */
function shieldHopProblems (values: ReadonlyMap<ParamName, { value: unknown, source: Source }>, failed: ReadonlySet<ParamName>): Problem[] {
  const edgeName = 'edge.shield.firstByteTimeoutMs'
  const shieldName = 'shield.origin.firstByteTimeoutMs'
  if (failed.has(edgeName) || failed.has(shieldName)) return []
  const shields = values.get('edge.shields')?.value as readonly string[] | undefined
  if (shields === undefined || shields.length === 0) return []
  const setsUpShield = [...values].some(([name, { source }]) => name.startsWith('shield.') && source.kind !== 'default')
  const edge = values.get(edgeName)
  const shield = values.get(shieldName)
  if (!setsUpShield || edge === undefined || shield === undefined) return []
  const edgeMs = edge.value as number
  const shieldMs = shield.value as number
  if (edgeMs > shieldMs) return []
  const attempts = 1 + ((values.get('shield.origin.retries')?.value as number | undefined) ?? 0)
  const connectMs = (values.get('shield.origin.connectTimeoutMs')?.value as number | undefined) ?? 0
  return [invalid(
    `${edgeName} ${edgeMs} ${sourceText(edge.source, edgeName)} must be larger than ${shieldName} ${shieldMs} ${sourceText(shield.source, shieldName)}: ` +
    'the edge would give up on its shield while the shield still waits for its origin, and go around it; ' +
    "set it above the shield's worst case, (shield.origin.retries + 1) × (shield.origin.connectTimeoutMs + shield.origin.firstByteTimeoutMs) = " +
    `${attempts} × (${connectMs} + ${shieldMs}) = ${attempts * (connectMs + shieldMs)} ms`
  )]
}

function buildTree (values: ReadonlyMap<ParamName, { value: unknown }>): Record<string, unknown> {
  const root: Record<string, unknown> = {}
  for (const row of PARAMS) {
    const parts = row.name.split('.')
    let node = root
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>
    node[parts[parts.length - 1] ?? ''] = values.get(row.name)?.value
  }
  return root
}

function deepFreeze<T> (value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value
  for (const child of Object.values(value)) deepFreeze(child)
  return Object.freeze(value)
}

function configError (problems: readonly Problem[]): CdnError {
  const code = problems.every((p) => p.unknownKey) ? 'CDN_ERR_CONFIG_UNKNOWN_KEY' : 'CDN_ERR_CONFIG_INVALID'
  return new CdnError(code, problems.map((p) => p.line).join('\n'))
}

function invalid (text: string): Problem {
  return { unknownKey: false, line: `Invalid config: ${text}` }
}

function unknownKey (text: string, suggestion: string | undefined): Problem {
  const hint = suggestion === undefined ? '' : `; did you mean ${suggestion}?`
  return { unknownKey: true, line: `Unknown config key: ${text}${hint}` }
}

function sourceText (source: Source, name: string): string {
  switch (source.kind) {
    case 'default': return '(default)'
    case 'file': return `(from file ${source.file})`
    case 'env': return `(from env ${source.key})`
    case 'argv': return `(from --${name})`
  }
}

/** The closest known key: same letters ignoring case, `-` and `_`, else within a small edit distance. */
function suggest (key: string, candidates: readonly string[]): string | undefined {
  const squash = (s: string): string => s.toLowerCase().replace(/[-_]/g, '')
  const same = candidates.find((c) => squash(c) === squash(key))
  if (same !== undefined) return same
  let best: string | undefined
  let bestDistance = Math.min(3, Math.floor(key.length / 3))
  for (const candidate of candidates) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase())
    if (distance <= bestDistance) {
      best = candidate
      bestDistance = distance - 1
    }
  }
  return best
}

function editDistance (a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      next.push(Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + cost))
    }
    row = next
  }
  return row[b.length] ?? 0
}

function listText (items: readonly string[]): string {
  if (items.length <= 1) return items.join('')
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1] ?? ''}`
}


function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}
