/**
 * One node per cache directory. A second store on the same directory would delete the
 * first one's temp files at its start and keep a second index and byte budget over the same
 * files. The lock is a file holding the owner's pid, created exclusively; a lock whose
 * process is gone (a crash, SIGKILL) is taken over. Where the lock cannot be written (a file
 * system remounted read-only after a crash) the store opens without one: it writes nothing
 * there either.
 */
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
        await file.writeFile(`${process.pid}\n`)
      } finally {
        await file.close()
      }
      return { release: () => unlink(path).catch(() => {}) }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return NO_LOCK
      if (code !== 'EEXIST' || attempt > 0) throw err
    }
    const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10)
    if (owner === process.pid || (owner > 0 && alive(owner))) {
      throw new CdnError('CDN_ERR_CONFIG_INVALID', `Cache directory ${dir} is in use by ${owner === process.pid ? 'another store of this process' : `process ${owner}`} (${path}): give each node its own directory, or remove the file if no node runs there`)
    }
    // the owner is gone: a stale lock from a crash
    await unlink(path).catch(() => {})
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
