/**
 * The zero-copy sender (lib/native/zero-copy.c, built at install by lib/native/build.ts),
 * or why it is missing. A large memory hit whose bytes the disk tier also holds goes out
 * with sendfile(2) from the page cache, as nginx sends its proxy_cache files: the kernel
 * does not copy the body from the process into the socket (lib/http/fast-front.ts).
 */
import { closeSync, openSync } from 'node:fs'
import { loadBuilt, type Loaded } from './load-built.ts'

/** The native functions (each synchronous and non-blocking; see zero-copy.c). */
export interface ZeroCopyAddon {
  /**
   * Sends `head` (latin1), then `length` bytes of `fileFd` from `offset`, on a non-blocking
   * socket, until done or the socket is full. Returns the bytes sent (head first), or -errno
   * when nothing was (os.constants.errno): -ENODATA when part of the range is not in the page
   * cache (sending it would block on a disk read; readahead of the range is queued, so a later
   * call finds it cached), -EAGAIN when the socket is full, -E2BIG for a head over 8 KiB,
   * which this helper does not copy.
   */
  sendHeadFile (socketFd: number, head: string, fileFd: number, offset: number, length: number): number
  /**
   * Sends `head` (latin1) and `body` from memory in one sendmsg(2) on a non-blocking socket.
   * Returns the bytes sent, possibly fewer than all, or -errno when none were (-EAGAIN: the
   * socket is full; -E2BIG: a head over 8 KiB, which this helper does not copy).
   */
  sendHeadBody (socketFd: number, head: string, body: Buffer): number
  /**
   * 1 when every page of the range is in the page cache, 0 when not, -errno when the kernel
   * cannot tell: what sendHeadFile asks before sending. With cachestat(2) (Linux 6.5+), else
   * (ENOSYS, or EPERM from a seccomp filter) with mincore(2) on a mapping of the range.
   */
  resident (fileFd: number, offset: number, length: number): number
  /** {@link resident} by cachestat(2) alone: -ENOSYS before Linux 6.5. For tests. */
  residentByCachestat (fileFd: number, offset: number, length: number): number
  /** {@link resident} by mincore(2) alone, the fallback, on any Linux. For tests. */
  residentByMincore (fileFd: number, offset: number, length: number): number
  /** Makes {@link resident} (and so sendHeadFile) use mincore from now on, as where cachestat is missing: for tests of that path. */
  useMincore (): number
  /** How {@link resident} asks: 'mincore' once cachestat was refused (or after useMincore), else 'cachestat'. */
  residentMethod (): 'cachestat' | 'mincore'
  /**
   * 1 when `fileFd`'s file still has a link and is inode `ino` of `size` bytes with mtime
   * `mtimeMs` (as fs.Stats gives them), 0 when not, -errno when fstat fails: fstatSync's
   * answer without building a Stats object.
   */
  unchanged (fileFd: number, ino: number, size: number, mtimeMs: number): number
  /** Writes back and drops the file's cached pages (tests use it to make a file not resident); 0 or -errno. */
  dropCached (fileFd: number): number
}

const loaded: Loaded<ZeroCopyAddon> = loadBuilt<ZeroCopyAddon>('zero-copy', 'sendfile from the page cache is Linux-only')
/** The addon, or undefined (then {@link zeroCopyUnavailable} says why). */
export const zeroCopy: ZeroCopyAddon | undefined = loaded.addon
/** Why {@link zeroCopy} is undefined; undefined when it loaded. */
export const zeroCopyUnavailable: string | undefined = loaded.unavailable

/**
 * How this kernel lets the sends check the page cache: 'cachestat', or 'mincore' where
 * cachestat is missing or refused; undefined without the addon. Asks once, about the addon's
 * own file, so the answer is settled before the first send (for the startup log).
 */
export function pageCacheCheck (): 'cachestat' | 'mincore' | undefined {
  if (zeroCopy === undefined) return undefined
  const fd = openSync(new URL('./build/zero-copy.node', import.meta.url), 'r')
  try {
    zeroCopy.resident(fd, 0, 1)
  } finally {
    closeSync(fd)
  }
  return zeroCopy.residentMethod()
}
