/**
 * The shield's origin table file (`shield.originsFile`), YAML or JSON:
 *
 * ```yaml
 * origins:
 *   - { url: http://packager-a:8000, prefix: /live/, priority: 0, weight: 2 }
 *   - { url: http://packager-b:8000, prefix: /live/, priority: 0, weight: 1 }
 *   - { url: http://vod-store:9000,  prefix: /vod/ }
 *   - { url: http://backup:8000,     prefix: /,      priority: 1 }
 * ```
 *
 * Every problem is reported at once, one per line, naming the entry, the field, the value and
 * the file, as config/load.ts does for settings. Read only by shield/main.ts.
 */
import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { CdnError, showValue } from '../lib/errors.ts'
import type { OriginSpec } from './origin-pool.ts'

const ENTRY_KEYS: ReadonlySet<string> = new Set(['url', 'prefix', 'priority', 'weight', 'name'])

/** Reads and validates an origins file; throws CDN_ERR_CONFIG_FILE (unreadable, unparsable) or CDN_ERR_CONFIG_INVALID. */
export function loadOriginsFile (file: string): OriginSpec[] {
  const ext = extname(file).toLowerCase()
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') {
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Origins file ${file} must end in .yaml, .yml or .json`)
  }
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Cannot read origins file ${file}: ${(err as Error).message}`, { cause: err })
  }
  let data: unknown
  try {
    // YAML 1.2 is a superset of JSON, so one parser serves both and reports line:column for either.
    data = parseYaml(text, { prettyErrors: true })
  } catch (err) {
    if (!(err instanceof YAMLParseError)) throw err
    const pos = err.linePos?.[0]
    const where = pos === undefined ? '' : `:${pos.line}:${pos.col}`
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Cannot parse origins file ${file}${where}: ${(err.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`, { cause: err })
  }
  return parseOrigins(data, file)
}

/** Validates parsed origins-file data (`{ origins: [...] }`); `file` only names the source in messages. */
export function parseOrigins (data: unknown, file: string): OriginSpec[] {
  const from = `(from file ${file})`
  if (!isPlainObject(data) || !Array.isArray(data['origins'])) {
    throw new CdnError('CDN_ERR_CONFIG_INVALID', `Invalid origins file: expected a mapping with an "origins" list, got ${show(data)} ${from}`)
  }
  const problems: string[] = []
  for (const key of Object.keys(data)) if (key !== 'origins') problems.push(`unknown key ${key} ${from}`)
  const list = data['origins'] as unknown[]
  if (list.length === 0) problems.push(`origins must list at least one origin ${from}`)
  const out: OriginSpec[] = []
  list.forEach((entry, i) => {
    const at = `origins[${i}]`
    if (!isPlainObject(entry)) {
      problems.push(`${at} must be a mapping with url, prefix, priority, weight, name; got ${show(entry)} ${from}`)
      return
    }
    for (const key of Object.keys(entry)) if (!ENTRY_KEYS.has(key)) problems.push(`${at}.${key} is not a known field (url, prefix, priority, weight, name) ${from}`)
    const url = entry['url']
    if (typeof url !== 'string' || !isHttpUrl(url)) problems.push(`${at}.url must be an http: or https: URL, got ${show(url)} ${from}`)
    // Only an absent prefix means /: an empty `prefix:` (YAML null) is more likely a value left
    // out than a wish for a catch-all, so it is refused like any other non-path.
    const prefix = 'prefix' in entry ? entry['prefix'] : '/'
    if (typeof prefix !== 'string' || !prefix.startsWith('/')) problems.push(`${at}.prefix must be a path starting with /, got ${show(prefix)} ${from}`)
    const priority = entry['priority'] ?? 0
    if (!Number.isSafeInteger(priority) || (priority as number) < 0) problems.push(`${at}.priority must be a non-negative integer, got ${show(priority)} ${from}`)
    const weight = entry['weight'] ?? 1
    if (!Number.isSafeInteger(weight) || (weight as number) < 1) problems.push(`${at}.weight must be a positive integer, got ${show(weight)} ${from}`)
    const name = entry['name']
    if (name !== undefined && (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._:-]*$/.test(name))) {
      problems.push(`${at}.name must be letters, digits, '.', '_', ':' and '-', got ${show(name)} ${from}`)
    }
    out.push({
      url: url as string,
      prefix: prefix as string,
      priority: priority as number,
      weight: weight as number,
      ...(typeof name === 'string' ? { name } : {}),
    })
  })
  if (problems.length > 0) throw new CdnError('CDN_ERR_CONFIG_INVALID', `Invalid origins file:\n${problems.join('\n')}`)
  return out
}

/** The quick-start list (`--origin A,B`): one prefix `/`, tried in the order given. */
export function originsFromList (urls: readonly string[]): OriginSpec[] {
  return urls.map((url, i) => ({ url, prefix: '/', priority: i }))
}

function isHttpUrl (s: string): boolean {
  if (!URL.canParse(s)) return false
  const protocol = new URL(s).protocol
  return protocol === 'http:' || protocol === 'https:'
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function show (value: unknown): string {
  return value === undefined ? 'nothing' : showValue(value)
}
