/**
 * The shield's origins file, from real files: YAML and JSON with their defaults; every broken
 * field refused in one CDN_ERR_CONFIG_INVALID whose line names the entry, the field, the
 * value and the file; torn or unparsable files named with line and column; unreadable files
 * and wrong extensions; and the quick-start `--origin A,B` list.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { loadOriginsFile, originsFromList, parseOrigins } from '../../shield/origins-file.ts'

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-origins-file-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Writes `text` to `name` in `dir` and returns the path. */
async function file (dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, text)
  return path
}

/** What loading `path` threw (fails the test when it loaded). */
function refusal (t: Test, path: string): { code: string | undefined, message: string } {
  try {
    const loaded = loadOriginsFile(path)
    t.fail(`expected ${path} to be refused, got ${JSON.stringify(loaded)}`)
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message }
  }
  return { code: undefined, message: '' }
}

t.test('the documented YAML example, with its defaults filled in', async (t) => {
  const dir = await tempDir(t)
  const path = await file(dir, 'origins.yaml', [
    'origins:',
    '  - { url: http://packager-a:8000, prefix: /live/, priority: 0, weight: 2 }',
    '  - { url: http://packager-b:8000, prefix: /live/, priority: 0, weight: 1 }',
    '  - { url: http://vod-store:9000,  prefix: /vod/ }',
    '  - { url: http://backup:8000,     prefix: /,      priority: 1 }',
    '',
  ].join('\n'))
  t.same(loadOriginsFile(path), [
    { url: 'http://packager-a:8000', prefix: '/live/', priority: 0, weight: 2 },
    { url: 'http://packager-b:8000', prefix: '/live/', priority: 0, weight: 1 },
    { url: 'http://vod-store:9000', prefix: '/vod/', priority: 0, weight: 1 },
    { url: 'http://backup:8000', prefix: '/', priority: 1, weight: 1 },
  ])
})

t.test('block YAML, .yml, and JSON (any case) with names', async (t) => {
  const dir = await tempDir(t)
  const yml = await file(dir, 'o.yml', [
    'origins:',
    '  - url: https://origin.example/base/',
    '    name: origin-a.eu_1:main',
    '    priority: 3',
    '',
  ].join('\n'))
  t.same(loadOriginsFile(yml), [{ url: 'https://origin.example/base/', prefix: '/', priority: 3, weight: 1, name: 'origin-a.eu_1:main' }])
  const json = await file(dir, 'o.JSON', JSON.stringify({ origins: [{ url: 'http://127.0.0.1:9000', prefix: '/vod/', weight: 5 }] }, null, 2))
  t.same(loadOriginsFile(json), [{ url: 'http://127.0.0.1:9000', prefix: '/vod/', priority: 0, weight: 5 }])
})

t.test('each broken field: one message naming the entry, the field, the value and the file', async (t) => {
  const dir = await tempDir(t)
  const cases: Array<[string, string, string]> = [
    // [entry in YAML, expected line after "Invalid origins file:\n"; FILE stands for the path]
    ['{ prefix: /vod/ }', 'origins[0].url must be an http: or https: URL, got nothing (from file FILE)', 'url missing'],
    ['{ url: ftp://o.example/ }', 'origins[0].url must be an http: or https: URL, got "ftp://o.example/" (from file FILE)', 'url not http'],
    ['{ url: "packager-a:8000" }', 'origins[0].url must be an http: or https: URL, got "packager-a:8000" (from file FILE)', 'url without a scheme'],
    ['{ url: "http://a b" }', 'origins[0].url must be an http: or https: URL, got "http://a b" (from file FILE)', 'url unparsable'],
    ['{ url: 8000 }', 'origins[0].url must be an http: or https: URL, got 8000 (from file FILE)', 'url a number'],
    ['{ url: "http://o", prefix: vod/ }', 'origins[0].prefix must be a path starting with /, got "vod/" (from file FILE)', 'relative prefix'],
    ['{ url: "http://o", prefix: 5 }', 'origins[0].prefix must be a path starting with /, got 5 (from file FILE)', 'prefix a number'],
    ['{ url: "http://o", prefix: }', 'origins[0].prefix must be a path starting with /, got null (from file FILE)', 'an empty prefix is not a catch-all'],
    ['{ url: "http://o", prefix: ~ }', 'origins[0].prefix must be a path starting with /, got null (from file FILE)', 'a null prefix is not a catch-all either'],
    ['{ url: "http://o", priority: -1 }', 'origins[0].priority must be a non-negative integer, got -1 (from file FILE)', 'negative priority'],
    ['{ url: "http://o", priority: 0.5 }', 'origins[0].priority must be a non-negative integer, got 0.5 (from file FILE)', 'fractional priority'],
    ['{ url: "http://o", priority: "1" }', 'origins[0].priority must be a non-negative integer, got "1" (from file FILE)', 'quoted priority'],
    ['{ url: "http://o", weight: 0 }', 'origins[0].weight must be a positive integer, got 0 (from file FILE)', 'zero weight'],
    ['{ url: "http://o", weight: 2.5 }', 'origins[0].weight must be a positive integer, got 2.5 (from file FILE)', 'fractional weight'],
    ['{ url: "http://o", weight: .inf }', 'origins[0].weight must be a positive integer, got Infinity (from file FILE)', 'infinite weight'],
    ['{ url: "http://o", priority: .nan }', 'origins[0].priority must be a non-negative integer, got NaN (from file FILE)', 'NaN priority'],
    ['{ url: "http://o", weight: 9007199254740993 }', 'origins[0].weight must be a positive integer, got 9007199254740992 (from file FILE)', 'weight beyond safe integers'],
    ['{ url: "http://o", name: "origin a" }', 'origins[0].name must be letters, digits, \'.\', \'_\', \':\' and \'-\', got "origin a" (from file FILE)', 'name with a space'],
    ['{ url: "http://o", name: -a }', 'origins[0].name must be letters, digits, \'.\', \'_\', \':\' and \'-\', got "-a" (from file FILE)', 'name starting with -'],
    ['{ url: "http://o", name: 7 }', 'origins[0].name must be letters, digits, \'.\', \'_\', \':\' and \'-\', got 7 (from file FILE)', 'name a number'],
    ['{ url: "http://o", host: o }', 'origins[0].host is not a known field (url, prefix, priority, weight, name) (from file FILE)', 'unknown field'],
    ['http://o', 'origins[0] must be a mapping with url, prefix, priority, weight, name; got "http://o" (from file FILE)', 'entry a string'],
    ['[http://o, /vod/]', 'origins[0] must be a mapping with url, prefix, priority, weight, name; got ["http://o","/vod/"] (from file FILE)', 'entry a list'],
  ]
  for (const [i, [entry, line, what]] of cases.entries()) {
    const path = await file(dir, `case-${i}.yaml`, `origins:\n  - ${entry}\n`)
    const err = refusal(t, path)
    t.equal(err.code, 'CDN_ERR_CONFIG_INVALID', what)
    t.equal(err.message, `Invalid origins file:\n${line.replace('FILE', path)}`, what)
  }
})

t.test('the file as a whole: not a mapping, no list, an empty list, unknown keys', async (t) => {
  const dir = await tempDir(t)
  const cases: Array<[string, string, string]> = [
    ['', 'Invalid origins file: expected a mapping with an "origins" list, got null (from file FILE)', 'empty file'],
    ['# origins: [] was here\n', 'Invalid origins file: expected a mapping with an "origins" list, got null (from file FILE)', 'only comments'],
    ['- url: http://o\n', 'Invalid origins file: expected a mapping with an "origins" list, got [{"url":"http://o"}] (from file FILE)', 'a bare list'],
    ['origins: { url: http://o }\n', 'Invalid origins file: expected a mapping with an "origins" list, got {"origins":{"url":"http://o"}} (from file FILE)', 'origins a mapping'],
    ['origin:\n  - url: http://o\n', 'Invalid origins file: expected a mapping with an "origins" list, got {"origin":[{"url":"http://o"}]} (from file FILE)', 'a misspelt key'],
    ['origins: []\n', 'Invalid origins file:\norigins must list at least one origin (from file FILE)', 'empty list'],
    ['origins:\n  - url: http://o\nretries: 3\n', 'Invalid origins file:\nunknown key retries (from file FILE)', 'unknown top-level key'],
  ]
  for (const [i, [text, message, what]] of cases.entries()) {
    const path = await file(dir, `whole-${i}.yaml`, text)
    const err = refusal(t, path)
    t.equal(err.code, 'CDN_ERR_CONFIG_INVALID', what)
    t.equal(err.message, message.replace('FILE', path), what)
  }
})

t.test('every problem of the file in one message, one line each, in file order', async (t) => {
  const dir = await tempDir(t)
  const path = await file(dir, 'origins.yaml', [
    'origins:',
    '  - { url: http://good:8000, prefix: /live/ }',
    '  - { url: ftp://bad, prefix: live, weight: 0 }',
    '  - just-a-string',
    '  - { url: http://ok, priority: -2, colour: red }',
    'extra: 1',
    '',
  ].join('\n'))
  const err = refusal(t, path)
  t.equal(err.code, 'CDN_ERR_CONFIG_INVALID')
  const lines = err.message.split('\n')
  t.same(lines, [
    'Invalid origins file:',
    `unknown key extra (from file ${path})`,
    `origins[1].url must be an http: or https: URL, got "ftp://bad" (from file ${path})`,
    `origins[1].prefix must be a path starting with /, got "live" (from file ${path})`,
    `origins[1].weight must be a positive integer, got 0 (from file ${path})`,
    `origins[2] must be a mapping with url, prefix, priority, weight, name; got "just-a-string" (from file ${path})`,
    `origins[3].colour is not a known field (url, prefix, priority, weight, name) (from file ${path})`,
    `origins[3].priority must be a non-negative integer, got -2 (from file ${path})`,
  ])
})

t.test('torn and unparsable files: CDN_ERR_CONFIG_FILE with the file, line and column', async (t) => {
  const dir = await tempDir(t)
  // a YAML file cut off inside a quoted URL
  const torn = await file(dir, 'torn.yaml', 'origins:\n  - { url: "http://packager-a:80')
  const a = refusal(t, torn)
  t.equal(a.code, 'CDN_ERR_CONFIG_FILE')
  t.match(a.message, new RegExp(`^Cannot parse origins file ${torn}:\\d+:\\d+: \\S`))
  t.notMatch(a.message, /\n/, 'one line')

  // a JSON file cut off mid-list: the same parser gives the line and column
  const tornJson = await file(dir, 'torn.json', '{\n  "origins": [\n    {"url": "http://a"},\n')
  const b = refusal(t, tornJson)
  t.equal(b.code, 'CDN_ERR_CONFIG_FILE')
  t.match(b.message, new RegExp(`^Cannot parse origins file ${tornJson}:\\d+:\\d+: \\S`))

  const dup = await file(dir, 'dup.yaml', 'origins:\n  - url: http://a\n    prefix: /a/\n    prefix: /b/\n')
  t.equal(refusal(t, dup).message, `Cannot parse origins file ${dup}:4:5: Map keys must be unique`, 'a field given twice is refused, not last-one-wins')

  const tabs = await file(dir, 'tabs.yml', 'origins:\n\t- url: http://a\n')
  const c = refusal(t, tabs)
  t.equal(c.code, 'CDN_ERR_CONFIG_FILE')
  t.match(c.message, new RegExp(`^Cannot parse origins file ${tabs}:2:\\d+: `))
})

t.test('unreadable files and wrong extensions', async (t) => {
  const dir = await tempDir(t)
  const missing = join(dir, 'missing.yaml')
  const a = refusal(t, missing)
  t.equal(a.code, 'CDN_ERR_CONFIG_FILE')
  t.match(a.message, new RegExp(`^Cannot read origins file ${missing}: .*ENOENT`))

  const folder = join(dir, 'folder.yaml')
  await mkdir(folder)
  const b = refusal(t, folder)
  t.equal(b.code, 'CDN_ERR_CONFIG_FILE')
  t.match(b.message, /EISDIR/)

  const txt = await file(dir, 'origins.txt', 'origins:\n  - url: http://a\n')
  t.same(refusal(t, txt), { code: 'CDN_ERR_CONFIG_FILE', message: `Origins file ${txt} must end in .yaml, .yml or .json` })
  const none = await file(dir, 'origins', 'origins:\n  - url: http://a\n')
  t.equal(refusal(t, none).code, 'CDN_ERR_CONFIG_FILE', 'no extension at all')
})

t.test('parseOrigins: validates decoded data, naming the file it came from', async (t) => {
  t.same(parseOrigins({ origins: [{ url: 'http://a' }] }, 'x.yaml'), [{ url: 'http://a', prefix: '/', priority: 0, weight: 1 }])
  t.throws(() => parseOrigins({ origins: [{ url: 'http://a', weight: -1 }] }, 'conf/origins.yaml'), {
    code: 'CDN_ERR_CONFIG_INVALID',
    message: 'Invalid origins file:\norigins[0].weight must be a positive integer, got -1 (from file conf/origins.yaml)',
  })
})

t.test('originsFromList: one prefix, tried in the order given', async (t) => {
  t.same(originsFromList(['http://a:1', 'http://b:2', 'http://c:3']), [
    { url: 'http://a:1', prefix: '/', priority: 0 },
    { url: 'http://b:2', prefix: '/', priority: 1 },
    { url: 'http://c:3', prefix: '/', priority: 2 },
  ])
  t.same(originsFromList([]), [])
})
