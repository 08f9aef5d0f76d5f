/**
 * Regional licensing: rules per content path prefix, evaluated at steering time (and bound
 * into the token the edges check). The most specific prefix wins; a path no rule covers is
 * unrestricted.
 *
 *   rules:
 *     - prefix: /vod/match-highlights/     # a title (trailing /: everything below it)
 *       allow: [DE, AT, CH]                # ISO 3166-1 alpha-2; omit for "everywhere but deny"
 *       deny: [XK]                         # deny wins over allow
 *       from: 2025-01-01T00:00:00Z         # optional window, ISO 8601
 *       until: 2026-01-01T00:00:00Z        # exclusive
 *       unknown: deny                      # clients with no known country; default deny when
 *                                          # the rule lists countries, else allow
 */
import { isRecord, Problems, readDataFile } from '../data-file.ts'

/** Why a rule refused a client (stable strings: logs, metrics, the 451 body). */
export type LicenceDenyReason = 'country-denied' | 'country-not-allowed' | 'not-yet-available' | 'expired' | 'unknown-location'

/** One rule. */
export interface LicenceRule {
  readonly prefix: string
  readonly allow?: ReadonlySet<string>
  readonly deny?: ReadonlySet<string>
  readonly fromMs?: number
  readonly untilMs?: number
  readonly unknown: 'allow' | 'deny'
}

/** Outcome of {@link LicensingRules.evaluate}. */
export type LicenceDecision =
  | { readonly allowed: true, readonly rule: LicenceRule | undefined }
  | { readonly allowed: false, readonly rule: LicenceRule, readonly reason: LicenceDenyReason }

/**
 * How far a token for a title may reach for one client ({@link LicensingRules.tokenReach}):
 * `whole` when every rule the title directory's paths fall under lets the client play now;
 * `untilMs`, the earliest end of those rules' windows, which the token must not outlive.
 */
export interface TokenReach {
  readonly whole: boolean
  readonly untilMs: number | undefined
}

/** A set of rules indexed by prefix. */
export class LicensingRules {
  readonly #byPrefix: ReadonlyMap<string, LicenceRule>
  // Lengths of the prefixes without a trailing slash: only a path of such a length can be one.
  readonly #exactLengths: ReadonlySet<number>
  // The rule of each directory asked about (null: none). Rules are immutable (a reload makes a
  // new instance), so this never goes stale; it spares a steering decision a map probe per
  // ancestor of its path, each with a freshly sliced key.
  readonly #byDirectory = new Map<string, LicenceRule | null>()
  // The rules strictly inside each title directory asked about (usually none), for tokenReach.
  readonly #insideDirectory = new Map<string, readonly LicenceRule[]>()

  constructor (rules: readonly LicenceRule[]) {
    this.#byPrefix = new Map(rules.map((rule) => [rule.prefix, rule]))
    this.#exactLengths = new Set(rules.filter((rule) => !rule.prefix.endsWith('/')).map((rule) => rule.prefix.length))
  }

  /** No rules: everything is allowed everywhere. */
  static empty (): LicensingRules {
    return new LicensingRules([])
  }

  get size (): number {
    return this.#byPrefix.size
  }

  /**
   * The most specific rule covering `path` (segment-aware: `/vod/a` covers `/vod/a/x`, not `/vod/ab`).
   * `directory` may give the path up to its last slash when the caller holds it already (steering's
   * title): it spares a slice and, when it is one reused string, the hashing of a fresh key. Any
   * other string is ignored, so it can never change the answer.
   */
  match (path: string, directory?: string): LicenceRule | undefined {
    if (this.#byPrefix.size === 0) return undefined
    if (this.#exactLengths.has(path.length)) {
      const exact = this.#byPrefix.get(path)
      if (exact !== undefined) return exact
    }
    const slash = path.lastIndexOf('/')
    if (slash < 0) return undefined
    // everything after the exact match depends only on the directory (the path up to its last slash)
    const dir = directory !== undefined && directory.length === slash + 1 && path.startsWith(directory) ? directory : path.slice(0, slash + 1)
    let rule = this.#byDirectory.get(dir)
    if (rule === undefined) {
      rule = this.#matchAncestors(path, slash) ?? null
      if (this.#byDirectory.size >= MAX_MEMOIZED_DIRECTORIES) this.#byDirectory.clear()
      this.#byDirectory.set(dir, rule)
    }
    return rule ?? undefined
  }

  /** The rule of the longest ancestor of `path` from its slash at `last` up. */
  #matchAncestors (path: string, last: number): LicenceRule | undefined {
    for (let i = last; i >= 0; i = path.lastIndexOf('/', i - 1)) {
      const withSlash = this.#byPrefix.get(path.slice(0, i + 1))
      if (withSlash !== undefined) return withSlash
      if (i > 0) {
        const without = this.#byPrefix.get(path.slice(0, i))
        if (without !== undefined) return without
      }
      if (i === 0) break
    }
    return undefined
  }

  /**
   * Decides whether a client in `country` (undefined = unknown) may play `path` at `nowMs`;
   * `directory` as for {@link LicensingRules.match}.
   */
  evaluate (path: string, country: string | undefined, nowMs: number, directory?: string): LicenceDecision {
    return decide(this.match(path, directory), country, nowMs)
  }

  /**
   * What a token scoped to the title directory `title` (ending in `/`) would open to a client
   * in `country` at `nowMs`. A token covers every path below its title, so it must not reach
   * a path whose rule refuses the client: a rule strictly inside the title (`/vod/dach/` under
   * `/vod/`, or one file's own rule), or the directory's own rule when the steered file has a
   * rule of its own. Not `whole`: the token may only name the steered file. `untilMs`: the
   * earliest window end among the rules reached, so a token never outlives a licence.
   */
  tokenReach (title: string, country: string | undefined, nowMs: number): TokenReach {
    if (this.#byPrefix.size === 0) return WHOLE
    const covering = this.match(title, title)
    if (covering !== undefined && !decide(covering, country, nowMs).allowed) return PART
    let untilMs = covering?.untilMs
    for (const rule of this.#inside(title)) {
      if (!decide(rule, country, nowMs).allowed) return PART
      if (rule.untilMs !== undefined && (untilMs === undefined || rule.untilMs < untilMs)) untilMs = rule.untilMs
    }
    return untilMs === undefined ? WHOLE : { whole: true, untilMs }
  }

  /** Rules whose prefix lies strictly inside `directory` (segment-aware, like a token's scope). */
  #inside (directory: string): readonly LicenceRule[] {
    let inside = this.#insideDirectory.get(directory)
    if (inside === undefined) {
      const below = directory.endsWith('/') ? directory : `${directory}/`
      inside = [...this.#byPrefix.values()].filter((rule) => rule.prefix.length > below.length && rule.prefix.startsWith(below))
      if (this.#insideDirectory.size >= MAX_MEMOIZED_DIRECTORIES) this.#insideDirectory.clear()
      this.#insideDirectory.set(directory, inside)
    }
    return inside
  }
}

const WHOLE: TokenReach = { whole: true, untilMs: undefined }
const PART: TokenReach = { whole: false, untilMs: undefined }

/** Whether `rule` (undefined: no rule) lets a client in `country` play at `nowMs`. */
function decide (rule: LicenceRule | undefined, country: string | undefined, nowMs: number): LicenceDecision {
  if (rule === undefined) return { allowed: true, rule }
  if (rule.fromMs !== undefined && nowMs < rule.fromMs) return { allowed: false, rule, reason: 'not-yet-available' }
  if (rule.untilMs !== undefined && nowMs >= rule.untilMs) return { allowed: false, rule, reason: 'expired' }
  if (country === undefined) {
    return rule.unknown === 'allow' ? { allowed: true, rule } : { allowed: false, rule, reason: 'unknown-location' }
  }
  if (rule.deny?.has(country) === true) return { allowed: false, rule, reason: 'country-denied' }
  if (rule.allow !== undefined && !rule.allow.has(country)) return { allowed: false, rule, reason: 'country-not-allowed' }
  return { allowed: true, rule }
}

/** Directories whose rule is remembered (cleared when full). */
const MAX_MEMOIZED_DIRECTORIES = 100_000

/** Reads and validates a licensing file. */
export function loadLicensingRules (path: string): LicensingRules {
  return parseLicensingRules(readDataFile(path, 'licensing'), `Invalid licensing file ${path}:`)
}

/** Validates decoded licensing data; every problem is reported at once. */
export function parseLicensingRules (data: unknown, prefix = 'Invalid licensing rules:'): LicensingRules {
  const problems = new Problems(prefix)
  const list = isRecord(data) ? data['rules'] : undefined
  if (!Array.isArray(list)) {
    problems.add('rules', 'a list of rules', list)
    problems.throwIfAny()
  }
  const rules: LicenceRule[] = []
  const seen = new Set<string>()
  ;(list as unknown[]).forEach((entry, i) => {
    const prefix = isRecord(entry) ? entry['prefix'] : undefined
    if (typeof prefix === 'string') {
      if (seen.has(prefix)) problems.note(`rules[${i}].prefix ${prefix} is listed twice`)
      seen.add(prefix)
    }
    const rule = parseRule(entry, `rules[${i}]`, problems)
    if (rule !== undefined) rules.push(rule)
  })
  problems.throwIfAny()
  return new LicensingRules(rules)
}

const KNOWN_KEYS = new Set(['prefix', 'allow', 'deny', 'from', 'until', 'unknown', 'note'])

function parseRule (entry: unknown, field: string, problems: Problems): LicenceRule | undefined {
  if (!isRecord(entry)) {
    problems.add(field, 'a mapping with a prefix', entry)
    return undefined
  }
  const before = problems.count
  for (const key of Object.keys(entry)) {
    if (!KNOWN_KEYS.has(key)) problems.note(`${field}.${key} is not a rule field (prefix, allow, deny, from, until, unknown, note)`)
  }
  const prefix = entry['prefix']
  if (typeof prefix !== 'string' || !prefix.startsWith('/') || /[?#\s]|\/\.\.?(?:\/|$)/.test(prefix)) {
    problems.add(`${field}.prefix`, 'an absolute path prefix without query, dot segments or spaces', prefix)
  }
  const allow = countries(entry['allow'], `${field}.allow`, problems)
  const deny = countries(entry['deny'], `${field}.deny`, problems)
  const fromMs = instant(entry['from'], `${field}.from`, problems)
  const untilMs = instant(entry['until'], `${field}.until`, problems)
  if (fromMs !== undefined && untilMs !== undefined && untilMs <= fromMs) problems.note(`${field}.until must be after ${field}.from`)
  const unknown = entry['unknown'] ?? (allow !== undefined || deny !== undefined ? 'deny' : 'allow')
  if (unknown !== 'allow' && unknown !== 'deny') problems.add(`${field}.unknown`, 'allow or deny', unknown)
  if (problems.count > before) return undefined
  return {
    prefix: prefix as string,
    ...(allow === undefined ? {} : { allow }),
    ...(deny === undefined ? {} : { deny }),
    ...(fromMs === undefined ? {} : { fromMs }),
    ...(untilMs === undefined ? {} : { untilMs }),
    unknown: unknown as 'allow' | 'deny',
  }
}

function countries (value: unknown, field: string, problems: Problems): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || !value.every((c) => typeof c === 'string' && /^[A-Z]{2}$/.test(c))) {
    problems.add(field, 'a list of ISO 3166-1 alpha-2 codes in capitals', value)
    return undefined
  }
  return new Set(value as string[])
}

function instant (value: unknown, field: string, problems: Problems): number | undefined {
  if (value === undefined) return undefined
  // YAML turns unquoted timestamps into Date objects
  const ms = value instanceof Date ? value.getTime() : typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : NaN
  if (!Number.isFinite(ms)) {
    problems.add(field, 'an ISO 8601 date-time like 2025-01-01T00:00:00Z', value instanceof Date ? 'an invalid date' : value)
    return undefined
  }
  return ms
}
