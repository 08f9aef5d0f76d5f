/**
 * Mapping profile positions back to TypeScript lines: a hand-made source map, and the real
 * dump a profiled child writes (bench/lib/source-map-dump.js) for a tsx-compiled file.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import t from 'tap'
import { sourceMapLineResolver, type SourceMapDump } from '../../../bench/lib/cpu-profile.ts'
import { profileNodeArgs } from '../../../bench/lib/profile-run.ts'

t.test('sourceMapLineResolver maps a generated column to its original line', async (t) => {
  // Segments: generated column 0 → line 0; column +10 → line +2.
  const dump: SourceMapDump = { 'file:///x.ts': { version: 3, sources: ['file:///x.ts'], names: [], mappings: 'AAAA,UAEA', file: 'x.js', sourceRoot: '', sourcesContent: [] } }
  const resolve = sourceMapLineResolver(dump)
  t.equal(resolve('file:///x.ts', 0, 3), 0)
  t.equal(resolve('file:///x.ts', 0, 12), 2)
  t.equal(resolve('file:///other.ts', 0, 12), undefined, 'no map, no line')
})

t.test('a profiled child dumps the maps of the checkout files it loaded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-test-prof-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const repo = fileURLToPath(new URL('../../../', import.meta.url))
  const target = join(repo, 'bench/lib/stats.ts')
  const child = spawn(process.execPath, [...profileNodeArgs(join(dir, 'prof')), '--import', 'tsx', '-e', `import(${JSON.stringify(pathToFileURL(target).href)}).then((m) => m.median([1, 2, 3]))`], { cwd: repo, stdio: 'ignore' })
  const [code] = await once(child, 'exit') as [number | null]
  t.equal(code, 0)
  const dump = JSON.parse(await readFile(join(dir, 'prof', 'source-maps.json'), 'utf8')) as SourceMapDump
  const url = pathToFileURL(target).href
  t.ok(dump[url] !== undefined, 'stats.ts has a map')
  // `median` is declared on line 7 of stats.ts (index 6): find its column in the generated code via the map itself.
  const source = await readFile(target, 'utf8')
  const line = source.split('\n').findIndex((l) => l.startsWith('export function median'))
  t.ok(line > 0)
  const resolve = sourceMapLineResolver(dump)
  const columns = Array.from({ length: 4000 }, (_, c) => c).filter((c) => resolve(url, 0, c) === line)
  t.ok(columns.length > 0, 'some generated column maps to the line of median()')
})
