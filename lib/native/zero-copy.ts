/**
 * The zero-copy sender (lib/native/zero-copy.c, built at install by lib/native/build.ts),
 * or why it is missing. A large memory hit whose bytes the disk tier also holds goes out
 * with sendfile(2) from the page cache, as nginx sends its proxy_cache files: the kernel
 * does not copy the body from the process into the socket (lib/http/fast-front.ts).
 */
import { closeSync, openSync } from 'node:fs'
import { constants } from 'node:os'
import { loadBuilt, type Loaded } from './load-built.ts'

/** The native functions (each synchronous and non-blocking; see zero-copy.c). */
export interface ZeroCopyAddon {
  /**
   * Sends `head` (latin1), then `length` bytes of `fileFd` from `offset`, on a non-blocking
   * socket, until done or the socket is full. Returns the bytes sent (head first), or -errno
   * when nothing was (os.constants.errno): -ENODATA when part of the range is not in the page
   * cache (sending it would block on a disk read; readahead of the range is queued, so a later
   * call finds it cached), -EAGAIN when the socket is full, -ENOSYS
   * on a kernel that cannot say what is cached (before Linux 6.5), -E2BIG for a head over
   * 8 KiB, which this helper does not copy.
   */
  sendHeadFile (socketFd: number, head: string, fileFd: number, offset: number, length: number): number
  /**
   * Sends `head` (latin1) and `body` from memory in one sendmsg(2) on a non-blocking socket.
   * Returns the bytes sent, possibly fewer than all, or -errno when none were (-EAGAIN: the
   * socket is full; -E2BIG: a head over 8 KiB, which this helper does not copy).
   */
  sendHeadBody (socketFd: number, head: string, body: Buffer): number
  /** 1 when every page of the range is in the page cache, 0 when not, -errno when the kernel cannot tell. */
  resident (fileFd: number, offset: number, length: number): number
  /**
   * 1 when `fileFd`'s file still has a link and is inode `ino` of `size` bytes with mtime
   * `mtimeMs` (as fs.Stats gives them), 0 when not, -errno when fstat fails: fstatSync's
   * answer without building a Stats object.
   */
  unchanged (fileFd: number, ino: number, size: number, mtimeMs: number): number
  /** Writes back and drops the file's cached pages (tests use it to make a file not resident); 0 or -errno. */
  dropCached (fileFd: number): number
}

function load (): Loaded<ZeroCopyAddon> {
  const loaded = loadBuilt<ZeroCopyAddon>('zero-copy', 'sendfile from the page cache is Linux-only')
  if (loaded.addon === undefined) return loaded
  // Without cachestat(2) nothing could be sent without risking a disk read on the event loop.
  const fd = openSync(new URL('./build/zero-copy.node', import.meta.url), 'r')
  try {
    if (loaded.addon.resident(fd, 0, 1) === -constants.errno.ENOSYS) return { addon: undefined, unavailable: 'this kernel cannot say which pages are cached (cachestat, Linux 6.5+)' }
  } finally {
    closeSync(fd)
  }
  return loaded
}

const loaded = load()
/** The addon, or undefined (then {@link zeroCopyUnavailable} says why). */
export const zeroCopy: ZeroCopyAddon | undefined = loaded.addon
/** Why {@link zeroCopy} is undefined; undefined when it loaded. */
export const zeroCopyUnavailable: string | undefined = loaded.unavailable
