/**
 * One node per cache directory. A second store on the same directory would delete the
 * first one's temp files at its start and keep a second index and byte budget over the same
 * files. The lock is a file naming its owner, created exclusively: the pid and, on Linux, the
 * boot id and the process's start time, so a pid reused after a crash (a restarted container
 * gets the same pid; after a reboot any process may hold it) is not mistaken for the owner.
 * A lock whose owner is gone is taken over. Where the lock cannot be written (a file system
 * remounted read-only after a crash) the store opens without one: it writes nothing there
 * either.
 */
import { readFileSync } from 'node:fs'
import { open, readFile, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { CdnError } from '../../lib/errors.ts'

/** The lock file, in the cache directory. */
export const LOCK_FILE = 'lock'

/** A held lock; release() removes it (at close). */
export interface DirLock {
  release (): Promise<void>
}

const NO_LOCK: DirLock = { release: async () => {} }

/** Takes `dir`'s lock, or throws CDN_ERR_CONFIG_INVALID naming the process that holds it. */
export async function lockDir (dir: string): Promise<DirLock> {
  const path = join(dir, LOCK_FILE)
  for (let attempt = 0; ; attempt++) {
    try {
      const file = await open(path, 'wx')
      try {
        await file.writeFile(`${ownerLine(process.pid)}\n`)
      } finally {
        await file.close()
      }
      HELD.add(path)
      return {
        release: async () => {
          HELD.delete(path)
          await unlink(path).catch(() => {})
        },
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return NO_LOCK
      if (code !== 'EEXIST' || attempt > 0) throw err
    }
    const line = (await readFile(path, 'utf8').catch(() => '')).trim()
    if (HELD.has(path)) throw inUse(dir, path, 'another store of this process')
    const owner = Number.parseInt(line, 10)
    if (owner > 0 && owner !== process.pid && alive(owner) && (line === String(owner) || ownerLine(owner) === line)) throw inUse(dir, path, `process ${owner}`)
    // the owner is gone (a crash), or its pid now names another process: a stale lock
    await unlink(path).catch(() => {})
  }
}

// Locks this process holds (by path): a second store here is refused, a lock naming our pid otherwise is stale.
const HELD = new Set<string>()

function inUse (dir: string, path: string, owner: string): CdnError {
  return new CdnError('CDN_ERR_CONFIG_INVALID', `Cache directory ${dir} is in use by ${owner} (${path}): give each node its own directory, or remove the file if no node runs there`)
}

/** `pid [boot-id start-time]`: the start time (in clock ticks since boot, /proc/<pid>/stat) tells a reused pid apart. */
function ownerLine (pid: number): string {
  try {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // fields after the command name, which may hold spaces and parentheses: state is field 3, starttime field 22
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
    return startTime === undefined ? String(pid) : `${pid} ${bootId} ${startTime}`
  } catch {
    return String(pid)
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
