/**
 * The token door (edge/proxy/access-gate.ts) behind a real node:http server on 127.0.0.1:
 * valid tokens in the path or the se_token query continue with the token taken out of the
 * URL (and kept for tokenOf); missing, expired, not-yet-valid, forged, unknown-key,
 * malformed, out-of-scope, escaping and IP-mismatched tokens get a 403 JSON answer with the
 * reason, counted by reason and logged without the token; HEAD refusals carry no body;
 * CORS preflights are answered before any token check; X-Forwarded-For is believed only
 * from trusted proxies; tokens not required are still taken out of the URL. Every request
 * also asks the fast path's `pass`, which must decide as `admit` does.
 */
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { AccessGate, CORS_HEADERS, type AccessGateOptions, type Admitted } from '../../../edge/proxy/access-gate.ts'
import { Forwarding } from '../../../edge/proxy/forwarding.ts'
import { createLogger } from '../../../lib/log.ts'
import { CacheNodeMetrics } from '../../../lib/metrics.ts'
import { TokenKey, TokenSigner, TokenVerifier } from '../../../lib/protocol/token.ts'
import { captureLogs } from '../../helpers/log-capture.ts'

const NOW_MS = 1_800_000_000_000
const NOW_S = NOW_MS / 1000
const key = new TokenKey('k1', 'access-gate-secret-0123456789')
const otherKey = new TokenKey('k1', 'a-different-secret-0123456789')
const signer = new TokenSigner([key])
const verifier = new TokenVerifier([key])
const TITLE_TOKEN = signer.sign({ exp: NOW_S + 3600, path: '/vod/title/' })

interface Gate {
  readonly url: string
  readonly port: number
  readonly metrics: CacheNodeMetrics
  readonly logs: Array<Record<string, unknown>>
  /** What `pass` said for each request target, in arrival order. */
  readonly passes: Array<{ readonly target: string, readonly result: Admitted | undefined }>
  clock: number
}

interface GateSetup {
  readonly token?: AccessGateOptions['token']
  readonly trustedProxies?: readonly string[]
}

/** A node:http server whose handler is `admit`, answering what the request continued with. */
async function startGate (t: Test, setup: GateSetup = { token: { required: true, verifier } }): Promise<Gate> {
  const { logs, destination } = captureLogs()
  const metrics = new CacheNodeMetrics({ role: 'edge', node: 'e1' })
  const state = { clock: NOW_MS }
  const gate = new AccessGate({
    token: setup.token,
    forwarding: new Forwarding({ name: 'streamedge-e1', trustedProxies: setup.trustedProxies ?? [] }),
    metrics,
    logger: createLogger({ level: 'debug', destination }),
    cacheName: 'streamedge-e1',
    now: () => state.clock,
  })
  const passes: Gate['passes'] = []
  const server = http.createServer((req, res) => {
    const target = req.url ?? '/'
    passes.push({
      target,
      result: gate.pass({ method: 'GET', target, headers: req.headers as Record<string, string>, remoteAddress: req.socket.remoteAddress, close: false }),
    })
    if (!gate.admit(req, res)) return
    const body = JSON.stringify({ url: req.url, token: gate.tokenOf(req) ?? null })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    metrics,
    logs,
    passes,
    get clock () { return state.clock },
    set clock (ms: number) { state.clock = ms },
  }
}

interface Answer {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
}

/** Sends `target` byte for byte (no URL normalisation: dot segments and escapes reach the server as written). */
function send (gate: Gate, target: string, options: { method?: string, headers?: Record<string, string>, agent?: http.Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: gate.port, path: target, method: options.method ?? 'GET', headers: options.headers, agent: options.agent ?? false }, (res) => {
      let body = ''
      res.setEncoding('latin1')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

function continued (res: Answer): { url: string, token: string | null } {
  return JSON.parse(res.body) as { url: string, token: string | null }
}

/** The last `pass` decision must match what `admit` did with the same request. */
function passAgrees (t: Test, gate: Gate, res: Answer): void {
  const last = gate.passes.at(-1)
  const target = last?.target.replace(/[\w-]{8,}\.[\w-]{43}/g, '<token>') ?? '?'
  if (res.status === 200) {
    const { url, token } = continued(res)
    t.same(last?.result, { ok: true, url, token: token ?? undefined }, `pass() continues as admit() did for ${target}`)
  } else {
    t.equal(last?.result, undefined, `pass() declines what admit() refused for ${target}`)
  }
}

t.test('a valid path token: the request continues without it, and tokenOf keeps it', async (t) => {
  const gate = await startGate(t)
  const res = await send(gate, `/t/${TITLE_TOKEN}/vod/title/360p/seg-1.ts?x=1`)
  t.equal(res.status, 200)
  t.same(continued(res), { url: '/vod/title/360p/seg-1.ts?x=1', token: TITLE_TOKEN })
  passAgrees(t, gate, res)
  t.equal(await gate.metrics.tokenRejections.value(), 0)
})

t.test('a valid query token: only se_token leaves the query, the other parameters stay byte for byte', async (t) => {
  const gate = await startGate(t)
  const res = await send(gate, `/vod/title/seg-1.ts?b=%2F&se_token=${TITLE_TOKEN}&a=1`)
  t.equal(res.status, 200)
  t.same(continued(res), { url: '/vod/title/seg-1.ts?b=%2F&a=1', token: TITLE_TOKEN })
  passAgrees(t, gate, res)
  const only = await send(gate, `/vod/title/seg-1.ts?se_token=${TITLE_TOKEN}`)
  t.same(continued(only), { url: '/vod/title/seg-1.ts', token: TITLE_TOKEN }, 'no dangling "?"')
  passAgrees(t, gate, only)
})

t.test('path and query both: the path token decides and the query one is dropped', async (t) => {
  const gate = await startGate(t)
  const forged = `${TITLE_TOKEN.slice(0, -3)}AAA`
  const res = await send(gate, `/t/${TITLE_TOKEN}/vod/title/a.ts?se_token=${forged}&k=v`)
  t.same(continued(res), { url: '/vod/title/a.ts?k=v', token: TITLE_TOKEN }, 'a forged query token beside a good path token is ignored')
  const reverse = await send(gate, `/t/${forged}/vod/title/a.ts?se_token=${TITLE_TOKEN}`)
  t.equal(reverse.status, 403, 'a good query token cannot rescue a forged path token')
  t.equal(JSON.parse(reverse.body).reason, 'bad-signature')
  passAgrees(t, gate, reverse)
})

t.test('an absolute-form target (RFC 9112 §3.2.2) continues in origin form', async (t) => {
  const gate = await startGate(t)
  const res = await send(gate, `http://edge.example/t/${TITLE_TOKEN}/vod/title/a.ts`)
  t.equal(res.status, 200)
  t.same(continued(res), { url: '/vod/title/a.ts', token: TITLE_TOKEN })
  passAgrees(t, gate, res)
})

t.test('403 for every bad token, with the reason, counted and logged without the token', async (t) => {
  const gate = await startGate(t)
  const forgedSignature = new TokenSigner([otherKey]).sign({ exp: NOW_S + 3600, path: '/vod/title/' })
  const unknownKey = new TokenSigner([new TokenKey('k9', 'unknown-key-secret-0123456789')]).sign({ exp: NOW_S + 3600, path: '/vod/title/' })
  const expired = signer.sign({ exp: NOW_S - 1, path: '/vod/title/' })
  const early = signer.sign({ exp: NOW_S + 3600, nbf: NOW_S + 60, path: '/vod/title/' })
  const otherTitle = signer.sign({ exp: NOW_S + 3600, path: '/vod/other/' })
  const sibling = signer.sign({ exp: NOW_S + 3600, path: '/vod/title' })
  const bound = signer.sign({ exp: NOW_S + 3600, path: '/vod/title/', ip: '198.51.100.4' })
  const cases: Array<[string, string]> = [
    ['/vod/title/seg-1.ts', 'missing'],
    ['/t//vod/title/seg-1.ts', 'missing'],
    ['/vod/title/seg-1.ts?se_token=', 'missing'],
    [`/t/${forgedSignature}/vod/title/seg-1.ts`, 'bad-signature'],
    [`/t/${unknownKey}/vod/title/seg-1.ts`, 'unknown-key'],
    ['/t/not.a-token/vod/title/seg-1.ts', 'malformed'],
    [`/t/${expired}/vod/title/seg-1.ts`, 'expired'],
    [`/t/${early}/vod/title/seg-1.ts`, 'not-yet-valid'],
    [`/t/${otherTitle}/vod/title/seg-1.ts`, 'out-of-scope'],
    [`/t/${sibling}/vod/titlebis/seg-1.ts`, 'out-of-scope'],
    [`/t/${TITLE_TOKEN}/vod/title/../other/seg-1.ts`, 'unsafe-path'],
    [`/t/${TITLE_TOKEN}/vod/title/%2e%2e/other/seg-1.ts`, 'unsafe-path'],
    [`/vod/title/%2E%2E/other/seg-1.ts?se_token=${TITLE_TOKEN}`, 'unsafe-path'],
    [`/t/${bound}/vod/title/seg-1.ts`, 'ip-mismatch'],
  ]
  const secrets = [TITLE_TOKEN, forgedSignature, unknownKey, expired, early, otherTitle, sibling, bound]
  for (const [target, reason] of cases) {
    const res = await send(gate, target)
    t.equal(res.status, 403, `${reason}: ${target.replace(/[\w-]{8,}\.[\w-]{43}/g, '<token>')}`)
    t.same(JSON.parse(res.body), { error: 'CDN_ERR_TOKEN_INVALID', reason })
    t.equal(res.headers['content-type'], 'application/json')
    t.equal(res.headers['content-length'], String(Buffer.byteLength(res.body)))
    t.equal(res.headers['cache-control'], 'no-store', 'a refusal is never cached by anyone')
    t.equal(res.headers['cache-status'], 'streamedge-e1; detail=CDN_ERR_TOKEN_INVALID')
    t.equal(res.headers['access-control-allow-origin'], '*', 'a browser player can read the refusal')
    t.equal(res.headers['access-control-expose-headers'], CORS_HEADERS[3])
    passAgrees(t, gate, res)
  }
  for (const reason of new Set(cases.map(([, r]) => r))) {
    t.equal(await gate.metrics.tokenRejections.value({ reason }), cases.filter(([, r]) => r === reason).length, `counted: ${reason}`)
  }
  t.equal(await gate.metrics.tokenRejections.value(), cases.length, 'each refusal counted once (pass() counts nothing)')
  const refusals = gate.logs.filter((l) => l['msg'] === 'request refused: playback token')
  t.equal(refusals.length, cases.length, 'one log line per refusal')
  t.match(refusals[0], { level: 'info', path: '/vod/title/seg-1.ts', reason: 'missing', client: '127.0.0.1' })
  t.match(refusals.find((l) => l['reason'] === 'expired'), { path: '/vod/title/seg-1.ts' }, 'the logged path has the token taken out')
  const logged = JSON.stringify(gate.logs)
  for (const secret of secrets) t.notOk(logged.includes(secret.split('.')[1]!), 'no token signature reaches the log')
})

t.test('expiry follows the injected clock: the same token passes, then is refused once exp is reached', async (t) => {
  const gate = await startGate(t)
  const token = signer.sign({ exp: NOW_S + 10, path: '/vod/title/' })
  const target = `/t/${token}/vod/title/seg-1.ts`
  gate.clock = NOW_MS + 9_999
  t.equal((await send(gate, target)).status, 200, 'valid until the last millisecond before exp')
  gate.clock = NOW_MS + 10_000
  const res = await send(gate, target)
  t.equal(res.status, 403)
  t.equal(JSON.parse(res.body).reason, 'expired')
  passAgrees(t, gate, res)
})

t.test('HEAD refusals: the 403 head says the length of the body a GET would get, and sends none', async (t) => {
  const gate = await startGate(t)
  const get = await send(gate, '/vod/title/seg-1.ts')
  const head = await send(gate, '/vod/title/seg-1.ts', { method: 'HEAD' })
  t.equal(head.status, 403)
  t.equal(head.body, '')
  t.equal(head.headers['content-length'], get.headers['content-length'])
  t.equal(await gate.metrics.tokenRejections.value({ reason: 'missing' }), 2, 'HEAD refusals count too')
})

t.test('CORS preflight: answered 204 before any token check; a plain OPTIONS is checked like any request', async (t) => {
  const gate = await startGate(t)
  const pre = await send(gate, '/vod/title/master.m3u8', { method: 'OPTIONS', headers: { origin: 'null', 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' } })
  t.equal(pre.status, 204)
  t.equal(pre.headers['access-control-allow-origin'], '*', 'Origin: null after the steering redirect is fine')
  t.equal(pre.headers['access-control-allow-methods'], 'GET, HEAD, OPTIONS')
  t.match(pre.headers['access-control-allow-headers'], /\brange\b/)
  t.match(pre.headers['access-control-allow-headers'], /\bif-range\b/)
  t.equal(pre.headers['access-control-max-age'], '86400')
  t.equal(pre.body, '')
  t.equal(await gate.metrics.tokenRejections.value(), 0, 'a preflight is no refusal')
  const plain = await send(gate, '/vod/title/master.m3u8', { method: 'OPTIONS' })
  t.equal(plain.status, 403, 'OPTIONS without Access-Control-Request-Method is no preflight')
})

t.test('X-Forwarded-For: believed from a trusted proxy for IP-bound tokens, ignored from anyone else', async (t) => {
  const bound = signer.sign({ exp: NOW_S + 3600, path: '/vod/title/', ip: '203.0.113.9' })
  const target = `/t/${bound}/vod/title/seg-1.ts`
  const behindLb = await startGate(t, { token: { required: true, verifier }, trustedProxies: ['127.0.0.1'] })
  const ok = await send(behindLb, target, { headers: { 'x-forwarded-for': '203.0.113.9' } })
  t.equal(ok.status, 200, 'the client behind the trusted proxy holds the token')
  passAgrees(t, behindLb, ok)
  const spoofed = await send(behindLb, target, { headers: { 'x-forwarded-for': '203.0.113.10' } })
  t.equal(JSON.parse(spoofed.body).reason, 'ip-mismatch')
  t.match(behindLb.logs.find((l) => l['reason'] === 'ip-mismatch'), { client: '203.0.113.10' }, 'the log names the client, not the proxy')
  passAgrees(t, behindLb, spoofed)

  const direct = await startGate(t)
  const claimed = await send(direct, target, { headers: { 'x-forwarded-for': '203.0.113.9' } })
  t.equal(claimed.status, 403, 'an untrusted peer cannot claim the bound address')
  t.equal(JSON.parse(claimed.body).reason, 'ip-mismatch')
  passAgrees(t, direct, claimed)
})

t.test('tokens not required: nothing is refused, a token is still taken out of the URL (even an unverified one)', async (t) => {
  for (const setup of [{ token: { required: false, verifier } }, {}]) {
    const gate = await startGate(t, setup)
    const plain = await send(gate, '/vod/title/seg-1.ts?x=1')
    t.same(continued(plain), { url: '/vod/title/seg-1.ts?x=1', token: null }, 'a URL without a token is untouched')
    passAgrees(t, gate, plain)
    const expired = signer.sign({ exp: NOW_S - 60, path: '/vod/title/' })
    const inPath = await send(gate, `/t/${expired}/vod/title/seg-1.ts`)
    t.same(continued(inPath), { url: '/vod/title/seg-1.ts', token: expired }, 'one cached copy for every viewer')
    passAgrees(t, gate, inPath)
    const inQuery = await send(gate, '/vod/title/seg-1.ts?se_token=garbage&x=1')
    t.same(continued(inQuery), { url: '/vod/title/seg-1.ts?x=1', token: 'garbage' })
    passAgrees(t, gate, inQuery)
    for (const [sent, url] of [['/vod/title/seg-1.ts?se_token=&x=1', '/vod/title/seg-1.ts?x=1'], ['/vod/title/seg-1.ts?se_token=', '/vod/title/seg-1.ts'], ['/t//vod/title/seg-1.ts', '/vod/title/seg-1.ts']] as const) {
      const empty = await send(gate, sent)
      t.same(continued(empty), { url, token: null }, `${sent}: an empty token slot is taken out (it would reach the origin and split the cache key)`)
      passAgrees(t, gate, empty)
    }
    t.equal(await gate.metrics.tokenRejections.value(), 0)
  }
})

t.test('tokenOf belongs to one request: the next request on a kept-alive connection has its own', async (t) => {
  const gate = await startGate(t, { token: { required: false, verifier } })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const sockets = new Set<unknown>()
  agent.on('free', (socket) => sockets.add(socket))
  const first = await send(gate, `/t/${TITLE_TOKEN}/vod/title/a.ts`, { agent })
  const second = await send(gate, '/vod/title/a.ts', { agent })
  t.equal(sockets.size, 1, 'both requests used one connection')
  t.equal(continued(first).token, TITLE_TOKEN)
  t.equal(continued(second).token, null, 'the first request\'s token does not leak into the second')
})
