/**
 * The wrk driver: the generated Lua script, the report parser, and one real short run
 * against a local server when wrk is installed.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { findExecutable } from '../../../bench/lib/executables.ts'
import { parseWrkReport, runWrk, wrkRequestsFile, wrkScript, type WrkOptions } from '../../../bench/lib/wrk.ts'

t.test('wrkScript: one path is static, several pick at random, headers are escaped', async (t) => {
  const one = wrkScript({ paths: ['/a.ts'], headers: { Range: 'bytes=0-9' } })
  t.match(one, /wrk\.path = "\/a\.ts"/)
  t.match(one, /wrk\.headers\["Range"\] = "bytes=0-9"/)
  t.notMatch(one, /request = function/, 'a single path needs no per-request Lua')
  t.match(one, /done = function\(summary, latency, requests\)/)
  const many = wrkScript({ paths: ['/a', '/b"c'], seed: 7 })
  t.match(many, /local paths = \{ "\/a", "\/b\\"c" \}/)
  t.match(many, /math\.randomseed\(7\)/)
  t.match(many, /request = function\(\)/)
  t.throws(() => wrkScript({ paths: [] }), TypeError)
})

t.test('wrkRequestsFile and a rotating script: one line per request, fields tab-separated', async (t) => {
  const file = wrkRequestsFile([{ path: '/v1/steer/a', headers: { 'X-Forwarded-For': '192.0.2.1' } }, { path: '/b' }])
  t.equal(file, '/v1/steer/a\tX-Forwarded-For: 192.0.2.1\n/b\n')
  t.throws(() => wrkRequestsFile([]), TypeError)
  t.throws(() => wrkRequestsFile([{ path: 'no-slash' }]), TypeError)
  t.throws(() => wrkRequestsFile([{ path: '/a\tb' }]), TypeError)
  t.throws(() => wrkRequestsFile([{ path: '/a', headers: { 'X-A': 'line\nbreak' } }]), TypeError)
  t.throws(() => wrkRequestsFile([{ path: '/a', headers: { 'X:A': 'v' } }]), TypeError)
  const script = wrkScript({ paths: [], requestsFile: '/tmp/r.tsv' })
  t.match(script, /io\.lines\("\/tmp\/r\.tsv"\)/)
  t.match(script, /request = function\(\)/)
  t.match(script, /"\[\^\\t\]\+"/, 'the Lua pattern splits on tabs')
  t.throws(() => wrkScript({ paths: [] }), TypeError, 'neither paths nor a requests file')
})

t.test('parseWrkReport reads the JSON line and converts units', async (t) => {
  const out = 'Running 1s test @ http://127.0.0.1:1/\n  1 threads and 2 connections\n' +
    'STREAMEDGE_WRK_REPORT {"requests":2000,"durationUs":2000000,"bytes":4096000,"connect":0,"read":1,"write":0,"status":3,"timeout":2,"p50Us":1500,"p99Us":9000,"maxUs":12000}\n'
  const r = parseWrkReport(out)
  t.equal(r.requests, 2000)
  t.equal(r.durationS, 2)
  t.equal(r.requestsPerSec, 1000)
  t.equal(r.bytes, 4096000)
  t.equal(r.latencyP50Ms, 1.5)
  t.equal(r.latencyP99Ms, 9)
  t.equal(r.statusErrors, 3)
  t.equal(r.timeouts, 2)
  t.throws(() => parseWrkReport('no report here'), TypeError)
  t.throws(() => parseWrkReport('STREAMEDGE_WRK_REPORT {"requests":"x"}'), TypeError)
})

const wrk = findExecutable('wrk')
t.test('runWrk against a real server: requests, bytes, headers and status errors', { skip: wrk === undefined ? 'wrk not installed' : false }, async (t) => {
  const seen = new Map<string, number>()
  let ranges = 0
  const server = http.createServer((req, res) => {
    seen.set(req.url ?? '', (seen.get(req.url ?? '') ?? 0) + 1)
    if (req.headers.range === 'bytes=0-9') ranges++
    res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-length': '10' })
    res.end('0123456789')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const one = await runWrk({ command: wrk!, url, paths: ['/one'], headers: { Range: 'bytes=0-9' }, connections: 2, durationS: 1 })
  t.ok(one.requests > 0)
  t.ok(seen.get('/one')! >= one.requests, 'the server saw every completed request on the one path')
  t.same([...seen.keys()], ['/one'], 'and no other path')
  t.equal(ranges, seen.get('/one'), 'the header went with every request')
  t.ok(one.bytes >= one.requests * 10, 'bytes include the bodies')
  t.equal(one.statusErrors, 0)
  const mixed = await runWrk({ command: wrk!, url, paths: ['/a', '/missing'], connections: 2, durationS: 1 })
  t.ok((seen.get('/a') ?? 0) > 0 && (seen.get('/missing') ?? 0) > 0, 'both paths were requested')
  t.ok(mixed.statusErrors > 0, '404s count as status errors')
  await t.rejects(runWrk({ command: wrk!, url: 'http://localhost:1', paths: ['/'], connections: 1, durationS: 1 }), TypeError, 'loopback by address only')
})

t.test('runWrk with prebuilt requests sends each one with its own fields, in turn', { skip: wrk === undefined ? 'wrk not installed' : false }, async (t) => {
  const seen = new Map<string, string>()
  let mismatched = 0
  let fixed = 0
  const server = http.createServer((req, res) => {
    const xff = String(req.headers['x-forwarded-for'])
    if (`/c/${xff}` !== req.url) mismatched++
    if (req.headers['x-fixed'] === 'yes') fixed++
    seen.set(req.url ?? '', xff)
    res.writeHead(302, { location: '/elsewhere', 'content-length': '0' })
    res.end()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const clients = Array.from({ length: 50 }, (_, i) => `198.51.100.${i}`)
  const report = await runWrk({ command: wrk!, url, requests: clients.map((ip) => ({ path: `/c/${ip}`, headers: { 'X-Forwarded-For': ip } })), headers: { 'X-Fixed': 'yes' }, connections: 2, durationS: 1 })
  t.ok(report.requests > 50, 'more requests than the rotation is long')
  t.equal(seen.size, 50, 'every prebuilt request was sent')
  t.equal(mismatched, 0, 'each path went with its own field')
  t.ok(fixed >= report.requests, 'the fixed fields went with every request')
  t.equal(report.statusErrors, 0, '302 is not a status error')
})

t.test('runWrk with delayMs paces each connection: a wait after every response, outside the latency', { skip: wrk === undefined ? 'wrk not installed' : false }, async (t) => {
  t.match(wrkScript({ paths: ['/a'], delayMs: 25 }), /delay = function\(\) return 25 end/)
  t.notMatch(wrkScript({ paths: ['/a'] }), /delay/)
  t.throws(() => wrkScript({ paths: ['/a'], delayMs: 0 }), TypeError)
  t.throws(() => wrkScript({ paths: ['/a'], delayMs: 1.5 }), TypeError)
  let answered = 0
  const server = http.createServer((_req, res) => {
    answered++
    res.end('ok')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  // 2 connections waiting 100 ms after each answer: at most ~2 x (1 s / 100 ms) + the first requests
  const paced = await runWrk({ command: wrk!, url, paths: ['/p'], connections: 2, durationS: 1, delayMs: 100 })
  t.ok(paced.requests > 0, 'requests were sent')
  t.ok(answered <= 2 * 11 + 2, `the delay held each connection back (${answered} answered in 1 s; unpaced wrk sends thousands)`)
  t.ok(paced.latencyP99Ms < 100, 'the wait is not counted as latency')
})

t.test('runWrk refuses paths and requests together before starting wrk', async (t) => {
  const both = { command: '/nonexistent/wrk', url: 'http://127.0.0.1:1', paths: ['/a'], requests: [{ path: '/b' }], connections: 1, durationS: 1 } as unknown as WrkOptions
  await t.rejects(runWrk(both), { name: 'TypeError', message: /options\.paths or options\.requests/ })
})
