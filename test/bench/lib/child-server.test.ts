/**
 * startChildServer with stdout to a file (the steering control plane's way): the listening
 * line is found in the file, the working directory is the one asked for, stop() ends it,
 * and a child that exits first is reported with its label; startEdgeProcess runs the edge
 * as README tells operators to (the V8 flags and the environment of an appliance).
 */
import { mkdtemp, readFile, realpath, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { APPLIANCE_ENV, APPLIANCE_NODE_ARGS, startChildServer, startEdgeProcess } from '../../../bench/lib/child-server.ts'
import { httpGet } from '../../../bench/lib/http-get.ts'

const SERVER = `
import http from 'node:http'
const server = http.createServer((req, res) => res.end('ok'))
server.listen(0, '127.0.0.1', () => {
  process.stdout.write('starting\\n')
  process.stdout.write(JSON.stringify({ msg: 'test listening', url: 'http://127.0.0.1:' + server.address().port, cwd: process.cwd() }) + '\\n')
})
process.once('SIGTERM', () => { server.closeAllConnections(); server.close(() => process.exit(0)) })
`

t.test('stdoutFile: ready from the file, cwd honoured, stop() ends the child', async (t) => {
  const dir = await realpath(await mkdtemp(join(tmpdir(), 'streamedge-child-server-')))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'server.mjs'), SERVER)
  const log = join(dir, 'out.jsonl')
  const child = await startChildServer({ label: 'file-logger', script: join(dir, 'server.mjs'), cwd: dir, stdoutFile: log, readyTimeoutMs: 10_000 })
  t.teardown(() => child.stop(1000))
  t.match(child.url, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal((await httpGet(`${child.url}/`)).body.toString(), 'ok')
  const lines = (await readFile(log, 'utf8')).trim().split('\n')
  t.equal(lines[0], 'starting')
  t.equal((JSON.parse(lines[1]!) as { cwd: string }).cwd, dir)
  await child.stop(5000)
  await t.rejects(httpGet(`${child.url}/`, 1000), 'stopped')
})

t.test('stdoutFile: a child that exits before listening fails with its label and exit code', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-child-server-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'crash.mjs'), "process.stderr.write('no config\\n'); process.exit(3)\n")
  await t.rejects(startChildServer({ label: 'crasher', script: join(dir, 'crash.mjs'), stdoutFile: join(dir, 'out.jsonl'), readyTimeoutMs: 10_000 }), /crasher did not start: exited \(3\)/)
})

t.test('startEdgeProcess: the edge runs with the appliance V8 flags and environment', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-child-server-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // nothing listens on port 9 of loopback: the edge starts without reaching its origin
  const edge = await startEdgeProcess({ originUrl: 'http://127.0.0.1:9', cacheDir: join(dir, 'cache'), memoryMaxBytes: 8 * 1024 * 1024 })
  t.teardown(() => edge.stop(5000))
  const argv = (await readFile(`/proc/${edge.pid}/cmdline`, 'utf8')).split('\0')
  t.ok(APPLIANCE_NODE_ARGS.length > 0, 'some flags')
  for (const flag of APPLIANCE_NODE_ARGS) t.ok(argv.indexOf(flag) > 0 && argv.indexOf(flag) < argv.findIndex((a) => a.endsWith('bin/streamedge.js')), `${flag} is a node flag`)
  const environ = (await readFile(`/proc/${edge.pid}/environ`, 'utf8')).split('\0')
  for (const [name, value] of Object.entries(APPLIANCE_ENV)) t.ok(environ.includes(`${name}=${value}`), name)
  t.equal((await httpGet(`${edge.url}/healthz`)).status, 200, 'the edge answers')
})
