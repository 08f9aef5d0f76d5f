import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { CdnError } from '../../lib/errors.ts'
import { EXIT_FAILURE, EXIT_USAGE, describeCommands, runCli } from '../../config/cli.ts'
import type { CliHandlers } from '../../config/cli.ts'
import { GiB, PARAMS } from '../../config/params.ts'
import type { StreamedgeConfig } from '../../config/params.ts'

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CLI_URL = pathToFileURL(join(REPO_ROOT, 'config/cli.ts')).href

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

interface RunResult {
  code: number
  stdout: string
  stderr: string
  exitCodes: number[]
  edge: Readonly<StreamedgeConfig>[]
  start: Readonly<StreamedgeConfig>[]
}

/** Runs the CLI in-process with captured output and recording handlers; env is empty unless given. */
async function run (
  args: string[],
  options: { env?: NodeJS.ProcessEnv, cwd?: string, handlers?: Partial<CliHandlers> } = {}
): Promise<RunResult> {
  const result: RunResult = { code: -1, stdout: '', stderr: '', exitCodes: [], edge: [], start: [] }
  const handlers: CliHandlers = {
    edge: async (config) => { result.edge.push(config) },
    start: async ({ config }) => { result.start.push(config) },
    ...options.handlers
  }
  result.code = await runCli(args, handlers, {
    stdout: (text) => { result.stdout += text },
    stderr: (text) => { result.stderr += text },
    env: options.env ?? {},
    cwd: options.cwd ?? REPO_ROOT,
    setExitCode: (code) => { result.exitCodes.push(code) }
  })
  return result
}

t.test('edge with the short flags alone makes a complete config', async (t) => {
  const dir = await tempDir(t)
  const r = await run(['edge', '--origin', 'http://127.0.0.1:9000', '--listen', '127.0.0.1:0', '--cache-dir', 'cache'], { cwd: dir })
  t.equal(r.code, 0)
  t.equal(r.stderr, '')
  t.same(r.exitCodes, [], 'no exit code set on success')
  t.equal(r.edge.length, 1)
  const config = r.edge[0]
  t.equal(config?.edge.origin, 'http://127.0.0.1:9000/')
  t.same(config?.edge.listen, { host: '127.0.0.1', port: 0 })
  t.equal(config?.edge.cacheDir, join(dir, 'cache'))
  t.equal(config?.edge.cache.memory.maxBytes, 256 * 1024 * 1024)
  t.ok(Object.isFrozen(config))
})

t.test('every setting is a flag, dotted as in the table', async (t) => {
  const r = await run([
    'edge', '--edge.origin', 'http://o',
    '--edge.cache.memory.maxBytes', '1GiB',
    '--edge.cache.disk.fsync',
    '--no-log.access',
    '--edge.cache.stripQueryParams', 'token', '--edge.cache.stripQueryParams', 'sig,exp',
    '--edge.upstream.connections', '5', '--edge.upstream.connections', '6',
    '--log.level', 'debug'
  ])
  t.equal(r.code, 0, r.stderr)
  const config = r.edge[0]
  t.equal(config?.edge.cache.memory.maxBytes, GiB)
  t.equal(config?.edge.cache.disk.fsync, true, 'a bare bool flag is true')
  t.equal(config?.log.access, false, '--no-<name> is false')
  t.same(config?.edge.cache.stripQueryParams, ['token', 'sig', 'exp'], 'repeated list flags add up')
  t.equal(config?.edge.upstream.connections, 6, 'a repeated scalar flag: the last wins')
  t.equal(config?.log.level, 'debug')
})

t.test('precedence through the CLI: file < env < flag, and STREAMEDGE_CONFIG', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'edge.yaml')
  await writeFile(file, 'edge:\n  origin: http://from-file\n  listen: ":81"\n  upstream:\n    connections: 1\n')
  const env = { STREAMEDGE_EDGE_LISTEN: ':82', STREAMEDGE_EDGE_UPSTREAM_CONNECTIONS: '2' }
  const r = await run(['edge', '--config', file, '--edge.upstream.connections', '3'], { env })
  t.equal(r.code, 0, r.stderr)
  t.equal(r.edge[0]?.edge.origin, 'http://from-file/')
  t.same(r.edge[0]?.edge.listen, { host: '0.0.0.0', port: 82 })
  t.equal(r.edge[0]?.edge.upstream.connections, 3)

  const viaEnv = await run(['edge'], { env: { STREAMEDGE_CONFIG: 'edge.yaml' }, cwd: dir })
  t.equal(viaEnv.code, 0, viaEnv.stderr)
  t.equal(viaEnv.edge[0]?.edge.origin, 'http://from-file/', 'STREAMEDGE_CONFIG names the file, relative to cwd')
})

t.test('start passes { config } to its handler and needs no origin', async (t) => {
  const r = await run(['start', '--start.edges', '3'])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.start[0]?.start.edges, 3)
  t.equal(r.edge.length, 0)
})

t.test('edge without an origin exits 2 with one message', async (t) => {
  const r = await run(['edge'])
  t.equal(r.code, EXIT_USAGE)
  t.same(r.exitCodes, [EXIT_USAGE])
  t.equal(r.stderr, 'edge.origin is required: give --origin URL or set it in the config file\n')
  t.equal(r.edge.length, 0, 'the handler never ran')
})

t.test('usage errors exit 2 with one line pointing at --help', async (t) => {
  const unknownFlag = await run(['edge', '--origin', 'http://o', '--bogus', '1'])
  t.equal(unknownFlag.code, EXIT_USAGE)
  t.equal(unknownFlag.stderr, 'Unknown argument: bogus (see "streamedge edge --help")\n')
  t.equal(unknownFlag.edge.length, 0)

  const typo = await run(['edge', '--edge.cache.memroy.maxBytes', '1'])
  t.match(typo.stderr, /^Unknown argument: edge\.cache\.memroy\.maxBytes/)

  const wrongCommandFlag = await run(['edge', '--start.edges', '2'])
  t.equal(wrongCommandFlag.code, EXIT_USAGE, 'flags of other commands are unknown')

  const missingValue = await run(['edge', '--edge.listen'])
  t.equal(missingValue.code, EXIT_USAGE)
  t.match(missingValue.stderr, /edge\.listen/)

  const noCommand = await run([])
  t.equal(noCommand.code, EXIT_USAGE)
  // every role command is named, config last (roles are added over time)
  t.match(noCommand.stderr, /^Give a command: edge, (?:[a-z-]+, )*config \(see "streamedge --help"\)\n$/)
  t.match(noCommand.stderr, /\bstart, /)

  const unknownCommand = await run(['shield'])
  t.equal(unknownCommand.code, EXIT_USAGE)

  const badValue = await run(['edge', '--origin', 'http://o', '--edge.cache.memory.maxBytes', 'lots'])
  t.equal(badValue.code, EXIT_USAGE)
  t.equal(badValue.stderr, 'Invalid config: edge.cache.memory.maxBytes must be a byte size like 512MiB (at least 1B), ' +
    'got "lots" (from --edge.cache.memory.maxBytes)\n')

  const badEnv = await run(['edge', '--origin', 'http://o'], { env: { STREAMEDGE_EDGE_LISTNE: ':80' } })
  t.equal(badEnv.code, EXIT_USAGE)
  t.match(badEnv.stderr, /^Unknown config key: STREAMEDGE_EDGE_LISTNE \(from env\); did you mean STREAMEDGE_EDGE_LISTEN\?/)
})

t.test('handler failures exit 1; a stack only for bugs', async (t) => {
  const ours = await run(['edge', '--origin', 'http://o'], {
    handlers: { edge: async () => { throw new CdnError('CDN_ERR_INTERNAL', 'Could not open the cache dir') } }
  })
  t.equal(ours.code, EXIT_FAILURE)
  t.equal(ours.stderr, 'Could not open the cache dir\n')

  const system = Object.assign(new Error('listen EADDRINUSE: address already in use 0.0.0.0:8080'), { code: 'EADDRINUSE' })
  const sys = await run(['edge', '--origin', 'http://o'], { handlers: { edge: async () => { throw system } } })
  t.equal(sys.code, EXIT_FAILURE)
  t.equal(sys.stderr, 'listen EADDRINUSE: address already in use 0.0.0.0:8080\n')

  const bug = await run(['edge', '--origin', 'http://o'], { handlers: { edge: async () => { throw new TypeError('x is undefined') } } })
  t.equal(bug.code, EXIT_FAILURE)
  t.match(bug.stderr, /^TypeError: x is undefined\n\s+at /)
})

t.test('config check FILE', async (t) => {
  const dir = await tempDir(t)
  const good = join(dir, 'good.yaml')
  await writeFile(good, 'edge:\n  origin: http://o\n')
  const ok = await run(['config', 'check', good], { env: { STREAMEDGE_EDGE_LISTEN: 'ignored-by-check' } })
  t.equal(ok.code, 0)
  t.equal(ok.stdout, `${good}: ok\n`)
  t.equal(ok.stderr, '')

  const bad = join(dir, 'bad.json')
  await writeFile(bad, JSON.stringify({ edge: { listen: 'x', nope: 1 } }))
  const notOk = await run(['config', 'check', bad])
  t.equal(notOk.code, EXIT_USAGE)
  t.equal(notOk.stdout, '')
  t.equal(notOk.stderr.trimEnd().split('\n').length, 2, 'both problems, one line each')

  const missing = await run(['config', 'check', join(dir, 'missing.yaml')])
  t.equal(missing.code, EXIT_USAGE)
  t.match(missing.stderr, /^Cannot read config file .*missing\.yaml: ENOENT/)

  const noFile = await run(['config', 'check'])
  t.equal(noFile.code, EXIT_USAGE)

  const seen: string[] = []
  const hooked = await run(['config', 'check', good], {
    handlers: {
      configCheck: async (file, config) => {
        seen.push(`${file} ${String(config.edge.origin)}`)
        throw new CdnError('CDN_ERR_CONFIG_INVALID', 'edge.tls.certFile cannot be read')
      }
    }
  })
  t.same(seen, [`${good} http://o/`], 'the hook sees the loaded config')
  t.equal(hooked.code, EXIT_USAGE)
  t.equal(hooked.stderr, 'edge.tls.certFile cannot be read\n')
})

t.test('--help lists commands and every flag of a command', async (t) => {
  const top = await run(['--help'])
  t.equal(top.code, 0)
  for (const command of ['edge', 'start', 'config']) t.match(top.stdout, new RegExp(`streamedge ${command}\\b`))

  const edge = await run(['edge', '--help'])
  t.equal(edge.code, 0)
  t.equal(edge.edge.length, 0, 'help runs nothing')
  for (const row of PARAMS) {
    const listed = edge.stdout.includes(`--${row.name} `) || edge.stdout.includes(`--${row.name},`)
    const own = row.name.startsWith('log.') || row.name.startsWith('edge.')
    t.equal(listed, own, `${row.name} ${own ? 'is' : 'is not'} listed`)
  }
  t.match(edge.stdout, '--edge.origin, --origin')
  t.match(edge.stdout, '--edge.listen, --listen')
  t.match(edge.stdout, '--edge.cacheDir, --cache-dir')
  t.match(edge.stdout, '--config')
  t.match(edge.stdout, '[default: 256MiB]')

  const start = await run(['start', '--help'])
  t.match(start.stdout, '--start.edges')

  const check = await run(['config', 'check', '--help'])
  t.equal(check.code, 0)
  t.match(check.stdout, 'streamedge config check <file>')
})

t.test('describeCommands exposes the short flags and required settings', async (t) => {
  const edge = describeCommands().find((c) => c.name === 'edge')
  t.same(edge?.aliases, { origin: 'edge.origin', shield: 'edge.shields', listen: 'edge.listen', 'cache-dir': 'edge.cacheDir' })
  t.same(edge?.required, ['edge.origin'])
})

t.test('a real process exits 0 for a good file and 2 for a bad one', async (t) => {
  const dir = await tempDir(t)
  const script = join(dir, 'cli.mjs')
  await writeFile(script, [
    `import { runCli } from ${JSON.stringify(CLI_URL)}`,
    'await runCli(process.argv.slice(2), { edge: async () => {}, start: async () => {} })',
    ''
  ].join('\n'))
  const good = join(dir, 'good.yaml')
  await writeFile(good, 'edge:\n  origin: http://o\n')
  const bad = join(dir, 'bad.yaml')
  await writeFile(bad, 'edge:\n  origin: [oops\n')

  const ok = await spawnNode([script, 'config', 'check', good])
  t.equal(ok.code, 0, ok.stderr)
  t.equal(ok.stdout, `${good}: ok\n`)

  const broken = await spawnNode([script, 'config', 'check', bad])
  t.equal(broken.code, 2)
  t.match(broken.stderr, new RegExp(`^Cannot parse config file ${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `))
  t.notMatch(broken.stderr, /\n\s+at /, 'no stack trace')
})

function spawnNode (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('STREAMEDGE_')))
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}
