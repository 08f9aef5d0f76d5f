/**
 * The admin endpoints (edge/proxy/admin.ts) driven through real servers on 127.0.0.1:
 * first the handler alone on node:http, with a proxy double that records purges (so each
 * answer can be checked against what reached the proxy): 404 with no token configured,
 * 401 for every bad Authorization (WWW-Authenticate, logged without the token, nothing
 * purged, body unread), 405/400/200/500 for purge, extra routes (rest, query, JSON body,
 * Allow, errors) and registered routes; then a real cache node: the NodeServer routes
 * `/admin/` here, a real purge empties the cache, a URL that makes no cache key is a 400,
 * and routes registered on the node's proxy answer.
 */
import { once } from 'node:events'
import http from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { CdnError } from '../../../lib/errors.ts'
import { createLogger } from '../../../lib/log.ts'
import { createAdminHandler, registerAdminRoutes, type AdminRequest, type AdminRoute, type AdminRoutes } from '../../../edge/proxy/admin.ts'
import type { CacheProxy } from '../../../edge/proxy/cache-proxy.ts'
import { fetchRaw, type Fetched } from '../../helpers/http-client.ts'
import { captureLogs } from '../../helpers/log-capture.ts'
import { startTestNode } from '../../helpers/cache-node.ts'
import { startScriptedOrigin } from '../../helpers/scripted-origin.ts'

const TOKEN = 'admin-secret-token-0123'
const AUTH = { authorization: `Bearer ${TOKEN}` }

type PurgeRequest = { readonly url: string } | { readonly prefix: string }

interface Admin {
  readonly url: string
  readonly purges: PurgeRequest[]
  readonly logs: Array<Record<string, unknown>>
  readonly proxy: CacheProxy
  /** What the next purge does: a count, or an error to throw. */
  next: number | Error
}

/** createAdminHandler on a node:http server, in front of a proxy double that records purges. */
async function startAdmin (t: Test, options: { token?: string | undefined, routes?: AdminRoutes } = {}): Promise<Admin> {
  const { logs, destination } = captureLogs()
  const state: { next: number | Error } = { next: 0 }
  const purges: PurgeRequest[] = []
  const proxy = {
    async purge (request: PurgeRequest): Promise<number> {
      purges.push(request)
      if (state.next instanceof Error) throw state.next
      return state.next
    },
  } as unknown as CacheProxy
  const handler = createAdminHandler({
    token: 'token' in options ? options.token : TOKEN,
    proxy,
    logger: createLogger({ level: 'debug', destination }),
    ...(options.routes === undefined ? {} : { routes: options.routes }),
  })
  const server = http.createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    purges,
    logs,
    proxy,
    get next () { return state.next },
    set next (value: number | Error) { state.next = value },
  }
}

function post (url: string, body: string | Buffer, headers: Record<string, string> = AUTH): Promise<Fetched> {
  return fetchRaw(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })
}

function json (res: Fetched): unknown {
  return JSON.parse(res.body.toString('utf8'))
}

/** Every admin answer is JSON, framed by Content-Length, and never cached. */
function isAdminJson (t: Test, res: Fetched): void {
  t.equal(res.headers['content-type'], 'application/json')
  t.equal(res.headers['content-length'], String(res.body.length))
  t.equal(res.headers['cache-control'], 'no-store')
  t.ok(res.body.toString().endsWith('\n'))
}

t.test('no admin token configured: every admin request is 404, authenticated or not, and nothing is purged', async (t) => {
  const admin = await startAdmin(t, { token: undefined })
  for (const headers of [{}, AUTH, { authorization: 'Bearer ' }]) {
    const res = await post(admin.url + '/admin/purge', '{"url":"/a"}', headers)
    t.equal(res.status, 404)
    isAdminJson(t, res)
    t.match(json(res), { error: /disabled/ })
    t.equal(res.headers['www-authenticate'], undefined, 'no challenge: there is nothing to authenticate to')
  }
  t.same(admin.purges, [])
})

t.test('401 for a missing, malformed or wrong token: challenged, logged without the token, nothing reaches the proxy', async (t) => {
  const admin = await startAdmin(t)
  const refused = [
    undefined,
    '',
    `Basic ${TOKEN}`,
    TOKEN,
    'Bearer',
    'Bearer ',
    'Bearer wrong-token',
    `Bearer ${TOKEN}x`,
    `Bearer ${TOKEN.slice(0, -1)}`,
    `Bearer ${TOKEN} extra`,
    `Bearer  ${TOKEN.toUpperCase()}`,
  ]
  for (const authorization of refused) {
    const res = await post(admin.url + '/admin/purge', '{"url":"/a"}', authorization === undefined ? {} : { authorization })
    t.equal(res.status, 401, `Authorization ${JSON.stringify(authorization)}`)
    t.equal(res.headers['www-authenticate'], 'Bearer', 'RFC 6750 §3 challenge')
    isAdminJson(t, res)
  }
  const extra = await fetchRaw(admin.url + '/admin/anything?x=1', { headers: { authorization: 'Bearer nope' } })
  t.equal(extra.status, 401, 'extra routes (even unknown ones) are behind the token too: no probing which exist')
  t.same(admin.purges, [])
  const warnings = admin.logs.filter((l) => l['msg'] === 'admin request refused: bad or missing token')
  t.equal(warnings.length, refused.length + 1)
  t.match(warnings[0], { level: 'warn', client: '127.0.0.1', path: '/admin/purge' })
  t.notOk(JSON.stringify(admin.logs).includes('wrong-token'), 'the offered token is not logged')
})

t.test('RFC 9110 §11.1: the scheme is case-insensitive and trailing whitespace is tolerated; the token is not', async (t) => {
  const admin = await startAdmin(t)
  admin.next = 2
  for (const authorization of [`bearer ${TOKEN}`, `BEARER ${TOKEN}`, `Bearer   ${TOKEN}`, `Bearer ${TOKEN}\t`]) {
    const res = await post(admin.url + '/admin/purge', '{"url":"/a"}', { authorization })
    t.equal(res.status, 200, JSON.stringify(authorization))
  }
  t.equal(admin.purges.length, 4)
})

t.test('a 401 does not wait for a large body the client is still sending', async (t) => {
  const admin = await startAdmin(t)
  const { port } = new URL(admin.url)
  const answer = await new Promise<number>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/admin/purge', method: 'POST', headers: { 'content-length': String(10 * 1024 * 1024) }, agent: false }, (res) => {
      resolve(res.statusCode ?? 0)
      res.resume()
      req.destroy()
    })
    req.on('error', (err) => { if (!req.destroyed) reject(err) })
    req.write(Buffer.alloc(1024)) // 1 KB of 10 MB; the rest never comes
  })
  t.equal(answer, 401)
  t.same(admin.purges, [])
})

t.test('purge: POST only (405 with Allow), then 400 for anything but {url} or {prefix} starting with "/"', async (t) => {
  const admin = await startAdmin(t)
  for (const method of ['GET', 'PUT', 'DELETE']) {
    const res = await fetchRaw(admin.url + '/admin/purge', { method, headers: AUTH })
    t.equal(res.status, 405, method)
    t.equal(res.headers['allow'], 'POST')
    isAdminJson(t, res)
  }
  const bad = [
    '', 'not json', '{"url": "/a"', 'null', '[]', '"/a"', '{}',
    '{"url": 5}', '{"prefix": 7}', '{"url": ["/a"]}', '{"url": "a"}', '{"url": "http://x/a"}', '{"prefix": "vod/"}',
    '{"url": "/a", "prefix": "/b/"}',
  ]
  for (const body of bad) {
    const res = await post(admin.url + '/admin/purge', body)
    t.equal(res.status, 400, `body ${JSON.stringify(body)}`)
    isAdminJson(t, res)
    t.match(json(res), { error: /expected a JSON body/ })
  }
  t.same(admin.purges, [], 'no bad request reached the proxy')
})

t.test('purge: the request reaches the proxy as given and the answer is {purged}', async (t) => {
  const admin = await startAdmin(t)
  admin.next = 3
  const byUrl = await post(admin.url + '/admin/purge', JSON.stringify({ url: '/vod/t/seg-1.ts?b=2&a=1' }))
  t.equal(byUrl.status, 200)
  isAdminJson(t, byUrl)
  t.same(json(byUrl), { purged: 3 })
  admin.next = 0
  const byPrefix = await post(admin.url + '/admin/purge', JSON.stringify({ prefix: '/vod/t/', comment: 'ignored' }))
  t.same(json(byPrefix), { purged: 0 }, 'purging nothing is still a success')
  t.same(admin.purges, [{ url: '/vod/t/seg-1.ts?b=2&a=1' }, { prefix: '/vod/t/' }], 'only url or prefix is handed on')
})

t.test('purge: a body over 64 KiB is refused with a 413 without being parsed, and nothing is purged', async (t) => {
  const admin = await startAdmin(t)
  const body = JSON.stringify({ url: '/vod/a.ts', pad: 'x'.repeat(70 * 1024) })
  const res = await post(admin.url + '/admin/purge', body)
  t.equal(res.status, 413, 'Content Too Large (RFC 9110 §15.5.14)')
  t.same(json(res), { error: 'request body over 65536 bytes' })
  t.same(admin.purges, [], 'a valid purge hidden in an oversized body is not applied')
  const justUnder = JSON.stringify({ url: '/vod/a.ts', pad: 'x'.repeat(60 * 1024) })
  t.equal((await post(admin.url + '/admin/purge', justUnder)).status, 200, 'a body under the limit is read')
})

t.test('purge: a client that leaves mid-body purges nothing and is a warning, not a purge failure', async (t) => {
  const admin = await startAdmin(t)
  const { port } = new URL(admin.url)
  const socket = connect(Number(port), '127.0.0.1')
  await once(socket, 'connect')
  socket.write(`POST /admin/purge HTTP/1.1\r\nHost: a\r\nAuthorization: ${AUTH.authorization}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"url":"/vod/`)
  for (let i = 0; i < 200 && !admin.logs.some((l) => l['msg'] === 'purge request body cut short: nothing purged'); i++) {
    if (i === 5) socket.destroy()
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.match(admin.logs.find((l) => l['msg'] === 'purge request body cut short: nothing purged'), { level: 'warn' })
  t.notOk(admin.logs.some((l) => l['msg'] === 'purge failed'), 'not logged as a failed purge')
  t.same(admin.purges, [])
})

t.test('purge: a CDN_ERR_REQUEST_INVALID from the proxy is a 400 with its message; anything else a logged 500', async (t) => {
  const admin = await startAdmin(t)
  admin.next = new CdnError('CDN_ERR_REQUEST_INVALID', 'Request target contains NUL, CR or LF')
  const invalid = await post(admin.url + '/admin/purge', '{"url":"/a\\u0000b"}')
  t.equal(invalid.status, 400)
  t.same(json(invalid), { error: 'Request target contains NUL, CR or LF' })
  admin.next = new Error('journal disk full')
  const failed = await post(admin.url + '/admin/purge', '{"prefix":"/vod/"}')
  t.equal(failed.status, 500)
  isAdminJson(t, failed)
  t.same(json(failed), { error: 'purge failed' }, 'the internal error is not echoed to the caller')
  t.match(admin.logs.find((l) => l['msg'] === 'purge failed'), { level: 'error', err: { message: 'journal disk full' } })
  admin.next = new CdnError('CDN_ERR_STORE_WRITE')
  t.equal((await post(admin.url + '/admin/purge', '{"prefix":"/vod/"}')).status, 500, 'other CdnErrors are 500s too')
})

/** A route that answers what it was given. */
function echoRoute (seen: AdminRequest[]): AdminRoute {
  return {
    handle (req) {
      seen.push(req)
      return { status: 200, body: { method: req.method, rest: req.rest, query: Object.fromEntries(req.query), body: req.body ?? null } }
    },
  }
}

t.test('extra routes: /admin/<name>[/<rest>][?query] with the JSON body of POST, PUT and PATCH', async (t) => {
  const seen: AdminRequest[] = []
  const admin = await startAdmin(t, { routes: new Map([['prefill', echoRoute(seen)]]) })
  const list = await fetchRaw(admin.url + '/admin/prefill?state=running&limit=5', { headers: AUTH })
  t.equal(list.status, 200)
  isAdminJson(t, list)
  t.same(json(list), { method: 'GET', rest: '', query: { state: 'running', limit: '5' }, body: null })
  const job = await fetchRaw(admin.url + '/admin/prefill/job-7/log', { headers: AUTH })
  t.same(json(job), { method: 'GET', rest: '/job-7/log', query: {}, body: null })
  for (const method of ['POST', 'PUT', 'PATCH']) {
    const res = await fetchRaw(admin.url + '/admin/prefill', { method, headers: { ...AUTH, 'content-type': 'application/json' }, body: '{"title":"/vod/t/","depth":2}' })
    t.same(json(res), { method, rest: '', query: {}, body: { title: '/vod/t/', depth: 2 } }, method)
  }
  const huge = await post(admin.url + '/admin/prefill', JSON.stringify({ title: '/vod/t/', pad: 'x'.repeat(70 * 1024) }))
  t.equal(huge.status, 413, 'an oversized body is refused before the route sees it')
  const notJson = await post(admin.url + '/admin/prefill', 'title=/vod/t/')
  t.same(json(notJson), { method: 'POST', rest: '', query: {}, body: null }, 'a body that is not JSON is no body')
  const deleted = await fetchRaw(admin.url + '/admin/prefill/job-7', { method: 'DELETE', headers: { ...AUTH, 'content-length': '16' }, body: '{"ignored":true}' })
  t.same(json(deleted), { method: 'DELETE', rest: '/job-7', query: {}, body: null }, 'DELETE bodies are not read')
  const missing = await fetchRaw(admin.url + '/admin/inventory', { headers: AUTH })
  t.equal(missing.status, 404)
  t.same(json(missing), { error: 'no admin endpoint /admin/inventory' })
  const bare = await fetchRaw(admin.url + '/admin/', { headers: AUTH })
  t.equal(bare.status, 404, '/admin/ itself is no endpoint')
  t.equal(seen.length, 7)
})

t.test('extra routes: status and Allow from the answer; async answers; errors are 400 or a logged 500', async (t) => {
  const routes = new Map<string, AdminRoute>([
    ['only-get', { handle: (req) => req.method === 'GET' ? { status: 200, body: { ok: true } } : { status: 405, body: { error: 'use GET' }, allow: 'GET' } }],
    ['later', { handle: async () => { await new Promise((resolve) => setTimeout(resolve, 5)); return { status: 202, body: { accepted: true } } } }],
    ['invalid', { handle: () => { throw new CdnError('CDN_ERR_REQUEST_INVALID', 'depth must be 1-5') } }],
    ['broken', { handle: async () => { throw new Error('inventory unavailable') } }],
  ])
  const admin = await startAdmin(t, { routes })
  const wrongMethod = await fetchRaw(admin.url + '/admin/only-get', { method: 'POST', headers: AUTH, body: '{}' })
  t.equal(wrongMethod.status, 405)
  t.equal(wrongMethod.headers['allow'], 'GET')
  t.equal((await fetchRaw(admin.url + '/admin/only-get', { headers: AUTH })).headers['allow'], undefined, 'no Allow unless the answer gives one')
  const later = await fetchRaw(admin.url + '/admin/later', { headers: AUTH })
  t.equal(later.status, 202)
  t.same(json(later), { accepted: true })
  const invalid = await fetchRaw(admin.url + '/admin/invalid', { headers: AUTH })
  t.equal(invalid.status, 400)
  t.same(json(invalid), { error: 'depth must be 1-5' })
  const broken = await fetchRaw(admin.url + '/admin/broken/x', { headers: AUTH })
  t.equal(broken.status, 500)
  t.same(json(broken), { error: 'admin request failed' })
  t.match(admin.logs.find((l) => l['msg'] === 'admin request failed'), { level: 'error', path: '/admin/broken/x', err: { message: 'inventory unavailable' } })
})

t.test('registerAdminRoutes: routes a content policy registers on the proxy answer; routes in the options win', async (t) => {
  const fromOptions: AdminRequest[] = []
  const admin = await startAdmin(t, { routes: new Map([['prefill', echoRoute(fromOptions)]]) })
  const registered: AdminRequest[] = []
  registerAdminRoutes(admin.proxy, new Map<string, AdminRoute>([
    ['inventory', { handle: (req) => { registered.push(req); return { status: 200, body: { titles: ['/vod/t/'] } } } }],
    ['prefill', { handle: () => ({ status: 418, body: { error: 'the registered prefill must not answer' } }) }],
  ]))
  const inventory = await fetchRaw(admin.url + '/admin/inventory', { headers: AUTH })
  t.equal(inventory.status, 200)
  t.same(json(inventory), { titles: ['/vod/t/'] })
  t.equal(registered.length, 1)
  t.equal((await fetchRaw(admin.url + '/admin/prefill', { headers: AUTH })).status, 200, 'the options route wins')
  t.equal(fromOptions.length, 1)
  t.equal((await fetchRaw(admin.url + '/admin/inventory', { headers: { authorization: 'Bearer nope' } })).status, 401, 'registered routes sit behind the token')
  t.equal(registered.length, 1)
})

t.test('a real cache node: /admin/ goes here, not to the origin; purge empties the cache; a bad URL is a 400', async (t) => {
  const origin = await startScriptedOrigin(t, {
    fallback: (req) => ({ headers: { 'cache-control': 'max-age=600', 'content-type': 'text/plain' }, body: `${req.path} #${req.index}` }),
  })
  const node = await startTestNode(t, { origin: origin.url, adminToken: TOKEN })
  const cached = async (path: string): Promise<boolean> => {
    const before = origin.count(path)
    await fetchRaw(node.url + path)
    return origin.count(path) === before
  }
  const path = '/vod/t/notes.txt'
  await fetchRaw(node.url + path)
  t.ok(await cached(path), 'stored')

  const refused = await post(node.url + '/admin/purge', JSON.stringify({ url: path }), { authorization: 'Bearer wrong' })
  t.equal(refused.status, 401)
  t.ok(await cached(path), 'a refused purge removes nothing')

  const invalid = await post(node.url + '/admin/purge', JSON.stringify({ url: '/vod/t/seg%0a1.ts' }))
  t.equal(invalid.status, 400, 'the proxy\'s CDN_ERR_REQUEST_INVALID (no cache key for it) is the caller\'s mistake')
  t.match(json(invalid), { error: /encoded NUL, CR or LF/ })

  const purged = await post(node.url + '/admin/purge', '{"prefix":"/vod/t/"}')
  t.equal(purged.status, 200)
  t.same(json(purged), { purged: 1 })
  t.notOk(await cached(path), 'the purged object is fetched again')
  t.equal(origin.count('/admin/purge'), 0, 'the origin never sees an admin request')

  registerAdminRoutes(node.proxy, new Map([['ping', { handle: () => ({ status: 200, body: { pong: true } }) }]]))
  t.same(json(await fetchRaw(node.url + '/admin/ping', { headers: AUTH })), { pong: true }, 'a route registered on the node\'s proxy answers')
  t.equal((await fetchRaw(node.url + '/admin/ping')).status, 401)
})
