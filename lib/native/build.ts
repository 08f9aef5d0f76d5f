/**
 * Builds lib/native/zero-copy.c into lib/native/build/zero-copy.node (run by `npm install`
 * and `npm ci`). Optional, like ws's bufferutil: without a C compiler, off Linux, or with
 * STREAMEDGE_NO_NATIVE=1 it prints why and exits 0, and streamedge copies large hits
 * through the socket instead of sending them from the page cache (lib/native/zero-copy.ts).
 * Node-API only, headers from the node-api-headers package: no node-gyp, no download.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, renameSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const source = join(here, 'zero-copy.c')
const outDir = join(here, 'build')
const out = join(outDir, 'zero-copy.node')

function skip (reason: string): never {
  process.stdout.write(`streamedge: zero-copy sends not built (${reason}); large hits are copied instead\n`)
  process.exit(0)
}

if (process.env.STREAMEDGE_NO_NATIVE === '1') skip('STREAMEDGE_NO_NATIVE=1')
if (process.platform !== 'linux') skip(`sendfile from the page cache is Linux-only, this is ${process.platform}`)
let include: string
try {
  include = join(dirname(createRequire(import.meta.url).resolve('node-api-headers/package.json')), 'include')
} catch {
  skip('the node-api-headers package is not installed')
}
const cc = process.env.CC ?? 'cc'
mkdirSync(outDir, { recursive: true })
const tmp = `${out}.${process.pid}.tmp`
const built = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-fvisibility=hidden', '-I', include, '-o', tmp, source], { encoding: 'utf8' })
if (built.error !== undefined || built.status !== 0) {
  rmSync(tmp, { force: true })
  const detail = built.error !== undefined ? built.error.message : (built.stderr.trim().split('\n')[0] ?? `exit ${String(built.status)}`)
  skip(`${cc} failed: ${detail}`)
}
renameSync(tmp, out)
process.stdout.write(`streamedge: built ${out}\n`)
