/**
 * Loads a native helper lib/native/build.ts built (Linux only), or says why it cannot: the
 * one loader of zero-copy.ts and heap-trim.ts.
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

/** A helper, or why it is missing. */
export type Loaded<T> = { readonly addon: T, readonly unavailable: undefined } | { readonly addon: undefined, readonly unavailable: string }

/**
 * `lib/native/build/<name>.node`; `offLinux` says what is missing on another platform
 * (each helper is Linux-only).
 */
export function loadBuilt<T> (name: string, offLinux: string): Loaded<T> {
  if (process.platform !== 'linux') return { addon: undefined, unavailable: `${offLinux} (this is ${process.platform})` }
  const built = new URL(`./build/${name}.node`, import.meta.url)
  const path = `lib/native/build/${name}.node`
  if (!existsSync(built)) return { addon: undefined, unavailable: `${path} was not built (npm install builds it with the C compiler; see its output)` }
  try {
    return { addon: createRequire(import.meta.url)(fileURLToPath(built)) as T, unavailable: undefined }
  } catch (err) {
    return { addon: undefined, unavailable: `${path} does not load: ${(err as Error).message}` }
  }
}
