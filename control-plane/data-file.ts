/**
 * The control plane's data files (node inventory, licensing rules, coverage zones): read as
 * YAML or JSON by extension, validated with every problem reported at once, and watched for
 * changes so operators edit them without a restart. A file that stops validating is refused
 * and the last good version stays in service (Traffic Router keeps its last good snapshot).
 */
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs'
import { extname } from 'node:path'
import { parse as parseYaml, YAMLParseError } from 'yaml'
import { CdnError, isCdnError, showValue } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'

/** Reads and parses a `.yaml`, `.yml` or `.json` file; `CDN_ERR_CONFIG_FILE` names the file, line and column. */
export function readDataFile (path: string, what: string): unknown {
  const ext = extname(path).toLowerCase()
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') {
    throw new CdnError('CDN_ERR_CONFIG_FILE', `The ${what} file ${path} must end in .yaml, .yml or .json`)
  }
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Cannot read the ${what} file ${path}: ${(err as Error).message}`, { cause: err })
  }
  try {
    return ext === '.json' ? JSON.parse(text) : parseYaml(text, { prettyErrors: true })
  } catch (err) {
    const pos = err instanceof YAMLParseError ? err.linePos?.[0] : jsonErrorPos(err, text)
    const where = pos === undefined ? '' : `:${pos.line}:${pos.col}`
    const reason = ((err as Error).message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')
    throw new CdnError('CDN_ERR_CONFIG_FILE', `Cannot parse the ${what} file ${path}${where}: ${reason}`, { cause: err })
  }
}

/** Line and column of a JSON.parse error, from the offset V8 gives (`at position N`, or the end of the input). */
function jsonErrorPos (err: unknown, text: string): { line: number, col: number } | undefined {
  if (!(err instanceof SyntaxError)) return undefined
  const at = / at position (\d+)/.exec(err.message)
  const offset = at !== null ? Number(at[1]) : err.message.includes('end of JSON input') ? text.length : undefined
  if (offset === undefined) return undefined
  const lines = text.slice(0, offset).split('\n')
  return { line: lines.length, col: (lines[lines.length - 1] ?? '').length + 1 }
}

/** Collects validation problems, then throws them together as one `CDN_ERR_CONFIG_INVALID`. */
export class Problems {
  readonly #lines: string[] = []
  readonly #prefix: string

  /** `prefix` opens every line, e.g. `Invalid nodes file nodes.yaml:`. */
  constructor (prefix: string) {
    this.#prefix = prefix
  }

  /** Records one problem: `field` must be `expected`, got `value`. */
  add (field: string, expected: string, value: unknown): void {
    this.#lines.push(`${this.#prefix} ${field} must be ${expected}, got ${showValue(value)}`)
  }

  /** Records a problem in free text. */
  note (text: string): void {
    this.#lines.push(`${this.#prefix} ${text}`)
  }

  get count (): number {
    return this.#lines.length
  }

  /** Throws if anything was recorded. */
  throwIfAny (): void {
    if (this.#lines.length > 0) throw new CdnError('CDN_ERR_CONFIG_INVALID', this.#lines.join('\n'))
  }
}


/** True for a plain `{}` object (not an array, not null). */
export function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Options of {@link WatchedFile}. */
export interface WatchedFileOptions<T> {
  readonly path: string
  /** What the file is, for messages (`nodes`, `licensing`, `coverage zones`). */
  readonly what: string
  /** Parses and validates the file's content; throws a CdnError when it is not usable. */
  readonly load: (path: string) => T
  /** Poll interval in ms; 0 disables watching. */
  readonly watchIntervalMs: number
  /** Called with each new good value after a change. */
  readonly onChange: (value: T) => void
  /** Called after each reload attempt (metrics). */
  readonly onReload?: (ok: boolean) => void
  readonly logger?: Logger
}

/** A data file loaded once at start (errors throw) and reloaded on change (errors are logged). */
export class WatchedFile<T> {
  readonly #o: WatchedFileOptions<T>
  #value: T
  #listener: ((curr: Stats, prev: Stats) => void) | undefined

  constructor (options: WatchedFileOptions<T>) {
    this.#o = options
    this.#value = options.load(options.path)
    if (options.watchIntervalMs > 0) {
      // several watchers of one path may share a process (tests, the demo): unwatch only ours
      this.#listener = (curr: Stats, prev: Stats) => {
        if (curr.mtimeMs === prev.mtimeMs && curr.size === prev.size) return
        this.reload()
      }
      watchFile(options.path, { interval: options.watchIntervalMs, persistent: false }, this.#listener)
    }
  }

  /** The last good value. */
  get value (): T {
    return this.#value
  }

  /** Re-reads the file now; keeps the last good value when the new one is refused. Returns whether it was taken. */
  reload (): boolean {
    try {
      this.#value = this.#o.load(this.#o.path)
    } catch (err) {
      const message = isCdnError(err) ? err.message : String(err)
      this.#o.logger?.warn({ file: this.#o.path, err: { message } }, `${this.#o.what} file refused; keeping the last good version`)
      this.#o.onReload?.(false)
      return false
    }
    this.#o.logger?.info({ file: this.#o.path }, `${this.#o.what} file reloaded`)
    this.#o.onReload?.(true)
    this.#o.onChange(this.#value)
    return true
  }

  close (): void {
    if (this.#listener !== undefined) unwatchFile(this.#o.path, this.#listener)
    this.#listener = undefined
  }
}
