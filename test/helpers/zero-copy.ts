/**
 * The zero-copy helper for tests: npm ci builds it (CI installs a C compiler), so a missing
 * or broken build fails the test; only a kernel that cannot tell what is cached (before
 * Linux 6.5, where streamedge never sends from files) skips it.
 */
import { zeroCopy, zeroCopyUnavailable, type ZeroCopyAddon } from '../../lib/native/zero-copy.ts'

interface Reporter { comment (message: string): void }

/** The addon, or undefined (after saying why in `t`) on a kernel without cachestat(2); throws when it was not built. */
export function requireZeroCopy (t: Reporter): ZeroCopyAddon | undefined {
  if (zeroCopy !== undefined) return zeroCopy
  if (zeroCopyUnavailable?.includes('cachestat') === true) {
    t.comment(`skipped: ${zeroCopyUnavailable}`)
    return undefined
  }
  throw new Error(`lib/native/zero-copy.node is not usable: ${String(zeroCopyUnavailable)}`)
}
