/**
 * The control plane's data files: YAML/JSON read by extension with the file, line and column
 * of a syntax error named; problems collected and thrown as one message; and a watched file
 * that takes good edits, refuses torn or broken ones while the last good version stays in
 * service, survives the file vanishing and coming back, and stops when closed.
 */
import { mkdir, mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { isCdnError } from '../../lib/errors.ts'
import { createLogger } from '../../lib/log.ts'
import { showValue as show } from '../../lib/errors.ts'
import { isRecord, Problems, readDataFile, WatchedFile } from '../../control-plane/data-file.ts'
import { captureLogs } from '../helpers/log-capture.ts'

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-data-file-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Runs `fn` and returns what it threw (fails the test when it did not throw). */
function thrown (t: Test, fn: () => unknown): Error & { code?: string } {
  try {
    fn()
  } catch (err) {
    return err as Error & { code?: string }
  }
  t.fail('expected a throw')
  return new Error('did not throw')
}

/** A loader like the real ones: `{ size: <positive integer> }`, problems named with file, field and value. */
function loadWidgets (path: string): number {
  const data = readDataFile(path, 'widgets')
  const problems = new Problems(`Invalid widgets file ${path}:`)
  const size = isRecord(data) ? data['size'] : data
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) problems.add('size', 'a positive integer', size)
  problems.throwIfAny()
  return size as number
}

/** Resolves with the next value a WatchedFile hands to onChange. */
function changes<T> (): { onChange: (value: T) => void, next: () => Promise<T> } {
  const waiting: Array<(value: T) => void> = []
  const queued: T[] = []
  return {
    onChange: (value) => {
      const resolve = waiting.shift()
      if (resolve === undefined) queued.push(value)
      else resolve(value)
    },
    next: async () => {
      if (queued.length > 0) return queued.shift() as T
      return await new Promise<T>((resolve) => waiting.push(resolve))
    },
  }
}

/** Reload outcomes; `next()` resolves with the first one reported after it is called. */
function reloads (): { onReload: (ok: boolean) => void, next: () => Promise<boolean>, all: boolean[] } {
  const all: boolean[] = []
  let waiting: Array<(ok: boolean) => void> = []
  return {
    all,
    onReload: (ok) => {
      all.push(ok)
      const resolve = waiting
      waiting = []
      for (const r of resolve) r(ok)
    },
    next: async () => await new Promise<boolean>((resolve) => waiting.push(resolve)),
  }
}

/** watchFile pollers do not hold the process open (persistent: false); a server would. */
function keepAlive (t: Test): void {
  const timer = setInterval(() => {}, 60_000)
  t.teardown(() => clearInterval(timer))
}

/** Gives a new watcher's poller time to take its first look, so a write right after is seen as a change. */
const settle = async (): Promise<void> => await new Promise((resolve) => setTimeout(resolve, 50))

const tick = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

t.test('readDataFile: YAML, YML and JSON by extension, any case', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'a.yaml'), 'nodes:\n  - id: edge-1\n    lat: 51.5\n')
  await writeFile(join(dir, 'b.YML'), '{ size: 3 }\n')
  await writeFile(join(dir, 'c.json'), '{"size": 4, "list": [1, 2]}')
  t.same(readDataFile(join(dir, 'a.yaml'), 'nodes'), { nodes: [{ id: 'edge-1', lat: 51.5 }] })
  t.same(readDataFile(join(dir, 'b.YML'), 'widgets'), { size: 3 })
  t.same(readDataFile(join(dir, 'c.json'), 'widgets'), { size: 4, list: [1, 2] })

  // a .json file is read as JSON, not as YAML: YAML-only syntax is refused
  await writeFile(join(dir, 'yamlish.json'), 'size: 4\n')
  t.throws(() => readDataFile(join(dir, 'yamlish.json'), 'widgets'), { code: 'CDN_ERR_CONFIG_FILE' })

  // an empty YAML file is null: the loader, not the reader, says what is missing
  await writeFile(join(dir, 'empty.yaml'), '# every line commented out\n')
  t.equal(readDataFile(join(dir, 'empty.yaml'), 'widgets'), null)
})

t.test('readDataFile: the wrong extension, a missing file, a directory', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'nodes.txt'), 'size: 1\n')
  const ext = thrown(t, () => readDataFile(join(dir, 'nodes.txt'), 'nodes'))
  t.equal(ext.code, 'CDN_ERR_CONFIG_FILE')
  t.equal(ext.message, `The nodes file ${join(dir, 'nodes.txt')} must end in .yaml, .yml or .json`)

  const missing = thrown(t, () => readDataFile(join(dir, 'licensing.yaml'), 'licensing'))
  t.equal(missing.code, 'CDN_ERR_CONFIG_FILE')
  t.match(missing.message, `Cannot read the licensing file ${join(dir, 'licensing.yaml')}: `)
  t.match(missing.message, /ENOENT/)
  t.equal((missing.cause as { code?: string }).code, 'ENOENT', 'the fs error is kept as the cause')

  await mkdir(join(dir, 'zones.yaml'))
  const isDir = thrown(t, () => readDataFile(join(dir, 'zones.yaml'), 'coverage zones'))
  t.equal(isDir.code, 'CDN_ERR_CONFIG_FILE')
  t.match(isDir.message, /^Cannot read the coverage zones file .*zones\.yaml: .*EISDIR/)
})

t.test('readDataFile: a YAML syntax error names the file, line and column, on one line', async (t) => {
  const dir = await tempDir(t)
  const torn = join(dir, 'nodes.yaml')
  // a file cut off mid-write: the flow mapping on line 3 never closes
  await writeFile(torn, 'nodes:\n  - id: edge-1\n  - { id: edge-2, url: "http://e2\n')
  const err = thrown(t, () => readDataFile(torn, 'nodes'))
  t.equal(err.code, 'CDN_ERR_CONFIG_FILE')
  // YAML finds the missing quote where the file ends
  t.equal(err.message, `Cannot parse the nodes file ${torn}:4:1: Missing closing "quote`)
  t.notMatch(err.message, /\n/, 'one line: the pretty code frame is dropped')
  t.notMatch(err.message, / at line \d+, column \d+/, 'the position is said once, as file:line:col')

  const dup = join(dir, 'dup.yml')
  await writeFile(dup, 'size: 1\nname: a\nsize: 2\n')
  t.match(thrown(t, () => readDataFile(dup, 'widgets')).message, new RegExp(`^Cannot parse the widgets file ${dup}:3:1: Map keys must be unique$`))

  const two = join(dir, 'two.yaml')
  await writeFile(two, 'size: 1\n---\nsize: 2\n')
  t.match(thrown(t, () => readDataFile(two, 'widgets')).message, new RegExp(`^Cannot parse the widgets file ${two}:2:1: Source contains multiple documents`))
})

t.test('readDataFile: a JSON syntax error names the file, line and column', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'nodes.json')
  // a trailing comma on line 3: the error is at the closing brace, line 4 column 1
  await writeFile(file, '{\n  "nodes": [],\n  "groups": {},\n}\n')
  const err = thrown(t, () => readDataFile(file, 'nodes'))
  t.equal(err.code, 'CDN_ERR_CONFIG_FILE')
  t.ok(err.cause instanceof SyntaxError, 'the JSON error is kept as the cause')
  t.match(err.message, new RegExp(`^Cannot parse the nodes file ${file}:4:1: `))

  // a file cut off mid-write: the error is at its end
  await writeFile(file, '{\n  "nodes": [\n    {"id": "edge-1"')
  t.match(thrown(t, () => readDataFile(file, 'nodes')).message, new RegExp(`^Cannot parse the nodes file ${file}:3:20: `))
})

t.test('Problems: every problem, one per line, in one CDN_ERR_CONFIG_INVALID', async (t) => {
  const none = new Problems('Invalid nodes file n.yaml:')
  t.equal(none.count, 0)
  none.throwIfAny()
  t.pass('nothing recorded: nothing thrown')

  const p = new Problems('Invalid nodes file n.yaml:')
  p.add('nodes[0].lat', 'a latitude from -90 to 90', 91)
  p.add('nodes[1].id', "1-64 letters, digits, '.', '_' or '-'", 'edge 2')
  p.add('nodes[2].url', 'an http: or https: base URL', undefined)
  p.note('nodes[3].id edge-1 is used twice')
  t.equal(p.count, 4)
  const err = thrown(t, () => p.throwIfAny())
  t.ok(isCdnError(err, 'CDN_ERR_CONFIG_INVALID'))
  t.equal(err.message, [
    'Invalid nodes file n.yaml: nodes[0].lat must be a latitude from -90 to 90, got 91',
    'Invalid nodes file n.yaml: nodes[1].id must be 1-64 letters, digits, \'.\', \'_\' or \'-\', got "edge 2"',
    'Invalid nodes file n.yaml: nodes[2].url must be an http: or https: base URL, got undefined',
    'Invalid nodes file n.yaml: nodes[3].id edge-1 is used twice',
  ].join('\n'))
})

t.test('show: values as written, long ones cut at 80 characters', async (t) => {
  t.equal(show('edge 1'), '"edge 1"')
  t.equal(show(undefined), 'undefined')
  t.equal(show(null), 'null')
  t.equal(show(0), '0')
  t.equal(show(false), 'false')
  t.equal(show({ lat: 1, lon: [2] }), '{"lat":1,"lon":[2]}')
  // YAML's .inf and .nan are numbers JSON cannot write: they must not read as null
  t.equal(show(Number.POSITIVE_INFINITY), 'Infinity')
  t.equal(show(Number.NEGATIVE_INFINITY), '-Infinity')
  t.equal(show(Number.NaN), 'NaN')
  const long = show('x'.repeat(200))
  t.equal(long.length, 80)
  t.equal(long, `"${'x'.repeat(76)}...`)
  t.equal(show('y'.repeat(78)), `"${'y'.repeat(78)}"`, 'exactly 80 characters is not cut')
})

t.test('a value YAML reads as infinity is named as such in the message', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'widgets.yaml')
  await writeFile(file, 'size: .inf\n')
  t.throws(() => loadWidgets(file), { code: 'CDN_ERR_CONFIG_INVALID', message: `Invalid widgets file ${file}: size must be a positive integer, got Infinity` })
})

t.test('isRecord: plain mappings only', async (t) => {
  t.equal(isRecord({}), true)
  t.equal(isRecord({ a: 1 }), true)
  t.equal(isRecord([]), false)
  t.equal(isRecord(null), false)
  t.equal(isRecord(undefined), false)
  t.equal(isRecord('a: 1'), false)
  t.equal(isRecord(1), false)
})

t.test('WatchedFile: a file that does not load at start throws', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'widgets.yaml')
  await writeFile(file, 'size: 0\n')
  let changed = 0
  t.throws(() => new WatchedFile({ path: file, what: 'widgets', load: loadWidgets, watchIntervalMs: 0, onChange: () => { changed++ } }), {
    code: 'CDN_ERR_CONFIG_INVALID',
    message: `Invalid widgets file ${file}: size must be a positive integer, got 0`,
  })
  t.throws(() => new WatchedFile({ path: join(dir, 'none.yaml'), what: 'widgets', load: loadWidgets, watchIntervalMs: 0, onChange: () => { changed++ } }), { code: 'CDN_ERR_CONFIG_FILE' })
  t.equal(changed, 0, 'onChange is for changes, not the first load')
})

t.test('WatchedFile: reload() takes a good file, refuses a bad one and keeps the last good value', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'widgets.yaml')
  await writeFile(file, 'size: 1\n')
  const seen: number[] = []
  const outcomes: boolean[] = []
  const { logs, destination } = captureLogs()
  const w = new WatchedFile({
    path: file, what: 'widgets', load: loadWidgets, watchIntervalMs: 0,
    onChange: (v) => seen.push(v), onReload: (ok) => outcomes.push(ok),
    logger: createLogger({ level: 'info', destination }),
  })
  t.teardown(() => w.close())
  t.equal(w.value, 1)

  await writeFile(file, 'size: 2\n')
  t.equal(w.value, 1, 'watching is off (0 ms): nothing changes until reload()')
  t.equal(w.reload(), true)
  t.equal(w.value, 2)

  await writeFile(file, 'size: -5\n')
  t.equal(w.reload(), false)
  t.equal(w.value, 2, 'an invalid file is refused; the last good value stays')

  await writeFile(file, 'size: [3\n')
  t.equal(w.reload(), false)
  t.equal(w.value, 2, 'an unparsable file is refused too')

  await unlink(file)
  t.equal(w.reload(), false)
  t.equal(w.value, 2, 'so is a missing file')

  t.same(seen, [2], 'onChange only for the good version')
  t.same(outcomes, [true, false, false, false])

  await tick()
  t.same(logs.map((l) => [l['level'], l['msg']]), [
    ['info', 'widgets file reloaded'],
    ['warn', 'widgets file refused; keeping the last good version'],
    ['warn', 'widgets file refused; keeping the last good version'],
    ['warn', 'widgets file refused; keeping the last good version'],
  ])
  t.same(logs[1]?.['file'], file)
  t.equal((logs[1]?.['err'] as { message: string }).message, `Invalid widgets file ${file}: size must be a positive integer, got -5`, 'the log names the field and the value')
  t.match((logs[2]?.['err'] as { message: string }).message, new RegExp(`^Cannot parse the widgets file ${file}:\\d+:\\d+: `))
  t.match((logs[3]?.['err'] as { message: string }).message, /^Cannot read the widgets file .*ENOENT/)
})

t.test('WatchedFile: a loader bug (not a CdnError) is refused and logged, not thrown', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'widgets.json')
  await writeFile(file, '{"size": 1}')
  let calls = 0
  const { logs, destination } = captureLogs()
  const w = new WatchedFile({
    path: file, what: 'widgets', watchIntervalMs: 0, onChange: () => {},
    load: (p) => {
      if (calls++ > 0) throw new TypeError('boom')
      return loadWidgets(p)
    },
    logger: createLogger({ level: 'info', destination }),
  })
  t.equal(w.reload(), false)
  t.equal(w.value, 1)
  await tick()
  t.equal((logs[0]?.['err'] as { message: string }).message, 'TypeError: boom')
})

t.test('WatchedFile: polling takes an edit, refuses a torn write, then takes the finished file', async (t) => {
  keepAlive(t)
  const dir = await tempDir(t)
  const file = join(dir, 'widgets.yaml')
  await writeFile(file, 'size: 1\n')
  const c = changes<number>()
  const r = reloads()
  const w = new WatchedFile({ path: file, what: 'widgets', load: loadWidgets, watchIntervalMs: 10, onChange: c.onChange, onReload: r.onReload })
  t.teardown(() => w.close())
  await settle()

  await writeFile(file, 'size: 22\n')
  t.equal(await c.next(), 22)
  t.equal(w.value, 22)
  t.equal(r.all.at(-1), true, 'onReload(true) came before onChange')

  // half of `size: 333\nname: [a, b]\n` written
  const refused = r.next()
  await writeFile(file, 'size: 333\nname: [a,')
  t.equal(await refused, false, 'the torn file is refused')
  t.equal(w.value, 22, 'and the last good value stays in service')

  await writeFile(file, 'size: 333\nname: [a, b]\n')
  t.equal(await c.next(), 333)
  t.equal(w.value, 333)
  t.equal(r.all.at(-1), true)
})

t.test('WatchedFile: the file vanishes (refused, value kept), then comes back by rename', async (t) => {
  keepAlive(t)
  const dir = await tempDir(t)
  const file = join(dir, 'widgets.yaml')
  await writeFile(file, 'size: 1\n')
  const c = changes<number>()
  const r = reloads()
  const w = new WatchedFile({ path: file, what: 'widgets', load: loadWidgets, watchIntervalMs: 10, onChange: c.onChange, onReload: r.onReload })
  t.teardown(() => w.close())
  await settle()

  const refused = r.next()
  await unlink(file)
  t.equal(await refused, false)
  t.equal(w.value, 1)

  // how deploy tools replace a file: write a temp file, rename it over the path
  const staged = join(dir, '.widgets.yaml.tmp')
  await writeFile(staged, 'size: 4444\n')
  await rename(staged, file)
  t.equal(await c.next(), 4444)
  t.equal(w.value, 4444)
})

t.test('WatchedFile: close() stops only its own watcher of a shared path', async (t) => {
  keepAlive(t)
  const dir = await tempDir(t)
  const file = join(dir, 'widgets.yaml')
  await writeFile(file, 'size: 1\n')
  const closedSeen: number[] = []
  const open = changes<number>()
  const closed = new WatchedFile({ path: file, what: 'widgets', load: loadWidgets, watchIntervalMs: 10, onChange: (v) => closedSeen.push(v) })
  const kept = new WatchedFile({ path: file, what: 'widgets', load: loadWidgets, watchIntervalMs: 10, onChange: open.onChange })
  t.teardown(() => kept.close())
  closed.close()
  closed.close()
  t.pass('close() twice is harmless')
  await settle()

  await writeFile(file, 'size: 55\n')
  // both listeners hang off one poller of the path: when the kept one hears of the edit,
  // the closed one would have too
  t.equal(await open.next(), 55)
  t.equal(kept.value, 55)
  t.same(closedSeen, [], 'the closed watcher heard nothing')
  t.equal(closed.value, 1)
})
