/**
 * The zero-copy helper for tests: npm ci builds it (CI installs a C compiler), so a missing
 * or broken build fails the test rather than skipping what it covers.
 */
import { zeroCopy, zeroCopyUnavailable, type ZeroCopyAddon } from '../../lib/native/zero-copy.ts'

/** The built addon; throws, saying why, when it is not usable. */
export function requireZeroCopy (): ZeroCopyAddon {
  if (zeroCopy !== undefined) return zeroCopy
  throw new Error(`lib/native/zero-copy.node is not usable: ${String(zeroCopyUnavailable)}`)
}
