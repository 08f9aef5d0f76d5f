/**
 * Builds the native helpers (run by `npm install` and `npm ci`):
 * - lib/native/zero-copy.c into build/zero-copy.node (sendfile from the page cache);
 * - lib/native/heap-trim.c into build/heap-trim.node (malloc_trim on a timer).
 *
 * Optional, like ws's bufferutil: without a C compiler, off Linux, or with
 * STREAMEDGE_NO_NATIVE=1 it prints why and exits 0, and streamedge runs without them (large
 * hits copied through the socket; the malloc heap left as glibc keeps it). Each helper is
 * built on its own, so one that fails (heap-trim off glibc) does not take the other down.
 * Node-API only, headers from the node-api-headers package: no node-gyp, no download.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, renameSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const outDir = join(here, 'build')

/** Each helper and what streamedge does without it. */
const HELPERS = [
  { name: 'zero-copy', without: 'zero-copy sends not built', fallback: 'large hits are copied instead' },
  { name: 'heap-trim', without: 'heap trimming not built', fallback: 'the malloc heap is left as glibc keeps it' },
] as const

function say (line: string): void {
  process.stdout.write(`streamedge: ${line}\n`)
}

function skipAll (reason: string): never {
  for (const h of HELPERS) say(`${h.without} (${reason}); ${h.fallback}`)
  process.exit(0)
}

if (process.env.STREAMEDGE_NO_NATIVE === '1') skipAll('STREAMEDGE_NO_NATIVE=1')
if (process.platform !== 'linux') skipAll(`the native helpers are Linux-only, this is ${process.platform}`)
let include: string
try {
  include = join(dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json')), 'include')
} catch {
  skipAll('the node-api-headers package is not installed')
}
const cc = process.env.CC ?? 'cc'
mkdirSync(outDir, { recursive: true })
for (const h of HELPERS) {
  const out = join(outDir, `${h.name}.node`)
  const tmp = `${out}.${process.pid}.tmp`
  const built = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-fvisibility=hidden', '-I', include, '-o', tmp, join(here, `${h.name}.c`)], { encoding: 'utf8' })
  if (built.error !== undefined || built.status !== 0) {
    rmSync(tmp, { force: true })
    const detail = built.error !== undefined ? built.error.message : (built.stderr.trim().split('\n')[0] ?? `exit ${String(built.status)}`)
    say(`${h.without} (${cc} failed: ${detail}); ${h.fallback}`)
    continue
  }
  renameSync(tmp, out)
  say(`built ${out}`)
}
