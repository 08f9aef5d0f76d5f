// Preload for a server the bench profiles: `node --cpu-prof --cpu-prof-dir DIR
// --enable-source-maps --import <this file> ...`. tsx compiles each TypeScript file to a
// single line, so V8's profile places every function at "line 0, column N". At exit this
// writes the source maps Node holds for the checkout's .ts files to DIR/source-maps.json,
// and bench/lib/cpu-profile.ts maps each column back to its TypeScript line.
// Plain JavaScript on purpose: it loads before (and independently of) tsx.
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { findSourceMap } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'

const SKIP = new Set(['node_modules', '.git', '.tap', 'results', 'media', 'var', 'tmp'])

/** The --cpu-prof-dir value, in either `--flag=value` or `--flag value` form. */
function profileDir () {
  const argv = process.execArgv
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--cpu-prof-dir') return argv[i + 1]
    if (argv[i]?.startsWith('--cpu-prof-dir=')) return argv[i].slice('--cpu-prof-dir='.length)
  }
  return undefined
}

/** The nearest directory above the main script that holds a package.json. */
function checkoutRoot () {
  let dir = dirname(process.argv[1] ?? process.cwd())
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir)
    if (up === dir) return process.cwd()
    dir = up
  }
  return dir
}

function tsFiles (dir, out) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name) || entry.name.startsWith('.')) continue
    const full = join(dir, entry.name)
    if (entry.isDirectory()) tsFiles(full, out)
    else if (entry.isFile() && entry.name.endsWith('.ts')) out.push(full)
  }
  return out
}

const outDir = profileDir()
if (outDir !== undefined) {
  process.once('exit', () => {
    const maps = {}
    for (const file of tsFiles(checkoutRoot(), [])) {
      const url = pathToFileURL(file).href
      const map = findSourceMap(url)
      if (map === undefined) continue
      const { version, sources, names, mappings } = map.payload
      maps[url] = { version, sources, names, mappings }
    }
    // Node creates the profile directory only when it writes the profile, after this handler.
    mkdirSync(outDir, { recursive: true })
    writeFileSync(join(outDir, 'source-maps.json'), JSON.stringify(maps))
  })
}
