/**
 * The purge journal: every purge is appended (and synced) to a file in the cache
 * directory before it is acknowledged, so a restart never resurrects purged content,
 * even objects whose files were not indexed yet when the purge came (phk's warning
 * about persistent caches: persist the invalidations too).
 *
 * One JSON line per purge: `{"t":<ms>,"kind":"url"|"prefix","value":"<cache key>"}`.
 * An object is purged when a rule covers its key and the rule is newer than the
 * object's upstream request. The journal is compacted after the disk index has been
 * rebuilt, completely, with it applied.
 *
 * The journal's directory is fsynced after the file is created and after a compaction
 * renames a new file into place: an fsync of the file alone does not persist its name, and
 * a power loss could otherwise lose the first purge ever recorded or bring back the old
 * file without the purges recorded after the compaction.
 */
import { appendFile, mkdir, open, readFile, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import { inspect } from 'node:util'
import { syncDir } from './object-file.ts'
import { primaryOf } from './vary.ts'
import type { ObjectMeta } from './types.ts'

export type PurgeKind = 'url' | 'prefix'

export interface PurgeRule {
  readonly t: number
  readonly kind: PurgeKind
  /** A primary cache key (kind url) or a key prefix (kind prefix). */
  readonly value: string
}

/** Whether a rule covers a key: a URL purge covers the URL and all its variants. */
export function ruleCovers (rule: PurgeRule, key: string): boolean {
  return rule.kind === 'url' ? primaryOf(key) === rule.value : key.startsWith(rule.value)
}

/** Options of {@link PurgeJournal.open}. */
export interface PurgeJournalOptions {
  /** fsyncs a directory (default: object-file.ts's syncDir); a seam for tests that observe it. */
  readonly syncDir?: ((path: string) => Promise<void>) | undefined
}

/** The append-only, fsynced log of purge rules (see the module comment). */
export class PurgeJournal {
  readonly #path: string
  readonly #syncDir: (path: string) => Promise<void>
  #rules: PurgeRule[]
  // Directories whose entries (the journal's name, the directories open() created) may not be durable yet.
  #unsyncedDirs: string[]
  // Records and compactions run one at a time: a record landing in the file a compaction is
  // about to rename over (or in the rule list it replaces) would be lost.
  #tail: Promise<unknown> = Promise.resolve()
  // The last append failed and may have left a partial line behind.
  #torn = false

  /** Use PurgeJournal.open(). */
  constructor (path: string, rules: PurgeRule[], options: PurgeJournalOptions = {}) {
    if (options.syncDir !== undefined && typeof options.syncDir !== 'function') {
      throw new TypeError(`Expected options.syncDir to be a function, got ${inspect(options.syncDir)}`)
    }
    this.#path = path
    this.#rules = rules
    this.#syncDir = options.syncDir ?? syncDir
    // The file may be new, or created by a process that crashed before syncing its directory.
    this.#unsyncedDirs = [dirname(path)]
  }

  /** Reads the journal (a missing file is an empty journal; unreadable lines are skipped). */
  static async open (path: string, options: PurgeJournalOptions = {}): Promise<PurgeJournal> {
    const dir = dirname(path)
    const created = await mkdir(dir, { recursive: true })
    let text = ''
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    const rules: PurgeRule[] = []
    for (const line of text.split('\n')) {
      if (line === '') continue
      try {
        const rule = JSON.parse(line) as PurgeRule
        if (typeof rule.t === 'number' && (rule.kind === 'url' || rule.kind === 'prefix') && typeof rule.value === 'string') rules.push(rule)
      } catch {
        // A torn last line from a crash mid-append: the purge was never acknowledged.
      }
    }
    const journal = new PurgeJournal(path, rules, options)
    // Directories mkdir created hold each other's entries: each parent is synced with the journal's own directory.
    if (created !== undefined) {
      for (let child = dir; child !== dirname(created) && child !== dirname(child); child = dirname(child)) journal.#unsyncedDirs.push(dirname(child))
    }
    // A torn last line must not swallow the next record's line: that one starts on a line of its own.
    // (Marked, not fixed by a write here: a journal on a file system remounted read-only still opens.)
    journal.#torn = text !== '' && !text.endsWith('\n')
    return journal
  }

  get rules (): readonly PurgeRule[] { return this.#rules }

  /** Appends a rule and syncs it to disk; resolves once the purge is durable. */
  record (rule: PurgeRule): Promise<void> {
    return this.#serial(() => this.#record(rule))
  }

  async #record (rule: PurgeRule): Promise<void> {
    // A failed append (a full disk) may have left part of its line: start on a fresh line, or this record would be unreadable too.
    const line = (this.#torn ? '\n' : '') + JSON.stringify(rule) + '\n'
    this.#torn = true
    await appendFile(this.#path, line)
    this.#torn = false
    const fh = await open(this.#path, 'r')
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
    await this.#syncDirs()
    this.#rules.push(rule)
  }

  /** Makes the journal's name durable; a failure is retried by the next record, which is not acknowledged until then. */
  async #syncDirs (): Promise<void> {
    while (this.#unsyncedDirs.length > 0) {
      await this.#syncDir(this.#unsyncedDirs[0]!)
      this.#unsyncedDirs.shift()
    }
  }

  /**
   * Whether a stored object was purged after it was fetched: a rule covers it when the
   * purge is later than the object's upstream request. (A fill in flight when a purge
   * arrives is kept from storing by the proxy, so "same millisecond" needs no tie-break.)
   */
  isPurged (meta: ObjectMeta): boolean {
    for (const rule of this.#rules) {
      if (rule.t > meta.requestTimeMs && ruleCovers(rule, meta.key)) return true
    }
    return false
  }

  /** Rewrites the journal keeping only rules newer than `keepAfterMs` (temp file, then rename). */
  compact (keepAfterMs: number): Promise<void> {
    return this.#serial(() => this.#compact(keepAfterMs))
  }

  async #compact (keepAfterMs: number): Promise<void> {
    const kept = this.#rules.filter((r) => r.t > keepAfterMs)
    const tmp = `${this.#path}.tmp`
    const fh = await open(tmp, 'w')
    try {
      await fh.writeFile(kept.map((r) => JSON.stringify(r) + '\n').join(''))
      await fh.sync()
    } finally {
      await fh.close()
    }
    // Until the directory is synced, a power loss may bring back the old file: records wait for that sync.
    this.#unsyncedDirs.unshift(dirname(this.#path))
    await rename(tmp, this.#path)
    this.#torn = false
    this.#rules = kept
    await this.#syncDirs()
  }

  #serial (task: () => Promise<void>): Promise<void> {
    const run = this.#tail.then(task)
    this.#tail = run.catch(() => {})
    return run
  }
}
