/**
 * Pre-rendered hit heads (edge/proxy/hit-head.ts): the text the fast path sends must be,
 * byte for byte, what node:http writes for the same storedObjectFields list (checked
 * against a real node:http server on 127.0.0.1), for whole answers and single ranges;
 * the head is kept while Age and the Cache-Status ttl stay the same whole numbers and
 * re-rendered when either moves; a stored field node:http would refuse makes the object
 * unsendable on the fast path (parity with writeHead's own checks).
 */
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import t from 'tap'
import type { MemoryObject, ObjectMeta, StoredHeaders } from '../../../edge/cache/types.ts'
import { storedObjectFields, type Responder } from '../../../edge/proxy/deliver.ts'
import { HitHead, HitHeads } from '../../../edge/proxy/hit-head.ts'

const RESPONDER: Responder = { cacheName: 'streamedge-e1', via: '1.1 streamedge-e1' }
const T0 = 1_800_000_000_000
const STORED_DATE = 'Fri, 15 Jan 2027 08:00:00 GMT'

function object (headers: StoredHeaders, options: { status?: number, body?: Buffer, initialAgeSeconds?: number } = {}): MemoryObject {
  const body = options.body ?? Buffer.from('0123456789abcdefghij')
  const meta: ObjectMeta = {
    key: '/vod/t/seg-1.ts',
    status: options.status ?? 200,
    headers,
    bodyBytes: body.length,
    requestTimeMs: T0 - 10,
    responseTimeMs: T0,
    initialAgeSeconds: options.initialAgeSeconds ?? 5,
    freshnessLifetimeSeconds: 600,
  }
  return { meta, body }
}

/** What the node:http path writes: `list` (plus framing) through writeHead on a real server. */
interface NodeAnswer { readonly head: string, readonly body: Buffer }

let answer: ((res: http.ServerResponse) => void) | undefined
const server = http.createServer((_req, res) => answer?.(res))
t.before(async () => {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
})
t.teardown(() => { server.closeAllConnections(); server.close() })

/** One raw request (Connection: close) and the exact bytes node:http answered with. */
async function viaNodeHttp (write: (res: http.ServerResponse) => void): Promise<NodeAnswer> {
  answer = write
  const { port } = server.address() as net.AddressInfo
  const socket = net.connect(port, '127.0.0.1')
  socket.end('GET /vod/t/seg-1.ts HTTP/1.1\r\nHost: edge.test\r\nConnection: close\r\n\r\n')
  const chunks: Buffer[] = []
  for await (const chunk of socket) chunks.push(chunk as Buffer)
  const raw = Buffer.concat(chunks)
  const end = raw.indexOf('\r\n\r\n')
  return { head: raw.subarray(0, end + 4).toString('latin1'), body: raw.subarray(end + 4) }
}

/** node:http's head, as the fast front would assemble it from `head` (fast-front.ts #write). */
function asFrontWould (head: string, ownDate: boolean, nodeHead: string): string {
  const date = /\r\nDate: ([^\r]+)\r\n/.exec(nodeHead)?.[1]
  return `${head}${ownDate ? '' : `Date: ${date ?? '(none)'}\r\n`}Connection: close\r\n\r\n`
}

const BASE_HEADERS: StoredHeaders = {
  'content-type': 'video/mp2t',
  'cache-control': 'max-age=600',
  etag: '"v1"',
  'last-modified': 'Thu, 14 Jan 2027 08:00:00 GMT',
  'x-origin-tag': ['one', 'two'],
  'cache-status': 'origin-cdn; fwd=miss',
  via: '1.1 origin-lb',
}

t.test('whole: exactly the bytes node:http writes for the same fields, with and without a stored Date', async (t) => {
  for (const headers of [BASE_HEADERS, { ...BASE_HEADERS, date: STORED_DATE }]) {
    const heads = new HitHeads(RESPONDER)
    const obj = object(headers)
    const now = T0 + 2500
    const head = heads.get(obj, 597, now)
    if (head === undefined) throw new Error('expected a sendable head')
    t.equal(head.ownDate, headers.date !== undefined, 'ownDate says whether the stored response has a Date')
    const list = storedObjectFields(RESPONDER, obj.meta, { hit: true, ttl: 597 }, now)
    const sent = await viaNodeHttp((res) => {
      res.writeHead(200, [...list, 'content-length', String(obj.body.length)])
      res.end(obj.body)
    })
    t.equal(asFrontWould(head.whole, head.ownDate, sent.head), sent.head, `same head as node:http (${headers.date === undefined ? 'node adds Date' : 'stored Date'})`)
    t.same(sent.body, obj.body)
    // What the head says, spelled out, so a change in storedObjectFields cannot hide here.
    t.match(head.whole, /^HTTP\/1\.1 200 OK\r\n/)
    t.match(head.whole, /\r\nage: 7\r\n/, 'Age = initial 5 s + 2.5 s resident, floored')
    t.match(head.whole, /\r\ncache-status: origin-cdn; fwd=miss, streamedge-e1; hit; ttl=597\r\n/, 'our Cache-Status entry appended to the stored one')
    t.match(head.whole, /\r\nvia: 1\.1 origin-lb, 1\.1 streamedge-e1\r\n/)
    t.match(head.whole, /\r\nx-origin-tag: one\r\nx-origin-tag: two\r\n/, 'a repeated field is sent once per value')
    t.match(head.whole, /\r\naccept-ranges: bytes\r\n/)
    t.ok(head.whole.endsWith(`content-length: ${obj.body.length}\r\n`), 'Content-Length last, no empty line (the front adds it)')
    t.notMatch(head.whole, /\r\n\r\n/)
  }
})

t.test('whole: a stored non-200 and an unregistered status render their status line as node:http does', async (t) => {
  for (const status of [404, 299]) {
    const heads = new HitHeads(RESPONDER)
    const obj = object({ 'content-type': 'text/plain', 'cache-control': 'max-age=10' }, { status, body: Buffer.from('not here\n') })
    const head = heads.get(obj, 3, T0)!
    const sent = await viaNodeHttp((res) => {
      res.writeHead(status, [...storedObjectFields(RESPONDER, obj.meta, { hit: true, ttl: 3 }, T0), 'content-length', String(obj.body.length)])
      res.end(obj.body)
    })
    t.equal(asFrontWould(head.whole, head.ownDate, sent.head), sent.head, `status ${status}`)
    t.notMatch(head.whole, /accept-ranges/, 'Accept-Ranges is added to 200s only')
  }
})

t.test('partial: RFC 9110 §14.4 206 heads match the node:http path for first, middle and last bytes', async (t) => {
  const heads = new HitHeads(RESPONDER)
  const obj = object({ ...BASE_HEADERS, date: STORED_DATE })
  const size = obj.meta.bodyBytes
  const head = heads.get(obj, 590, T0 + 10_000)!
  for (const [start, end] of [[0, 0], [3, 9], [size - 1, size - 1], [0, size - 1]] as const) {
    const partial = head.partial(start, end, size)
    const list = storedObjectFields(RESPONDER, obj.meta, { hit: true, ttl: 590 }, T0 + 10_000)
    const sent = await viaNodeHttp((res) => {
      res.writeHead(206, [...list, 'content-range', `bytes ${start}-${end}/${size}`, 'content-length', String(end - start + 1)])
      res.end(obj.body.subarray(start, end + 1))
    })
    t.equal(asFrontWould(partial, head.ownDate, sent.head), sent.head, `bytes ${start}-${end}`)
    t.match(partial, /^HTTP\/1\.1 206 Partial Content\r\n/)
    t.ok(partial.endsWith(`content-range: bytes ${start}-${end}/${size}\r\ncontent-length: ${end - start + 1}\r\n`))
    t.match(partial, /\r\nage: 15\r\n/, 'the partial head carries the same Age as the whole one')
  }
  t.equal(head.whole.match(/\r\ncontent-length:/g)?.length, 1, 'partial() leaves the whole head alone')
})

t.test('partial and wireHead: the same strings while range, Date and close stay, new ones when any moves or the head re-renders', async (t) => {
  const heads = new HitHeads(RESPONDER)
  const obj = object({ ...BASE_HEADERS })
  const size = obj.meta.bodyBytes
  const head = heads.get(obj, 590, T0 + 10_000)!
  const a = head.partial(3, 9, size)
  t.equal(head.partial(3, 9, size), a, 'the same range: the same head')
  const b = head.partial(0, 9, size)
  t.not(b, a)
  t.ok(b.endsWith('content-range: bytes 0-9/20\r\ncontent-length: 10\r\n'), 'another range: its own head')
  t.ok(head.partial(3, 9, size).endsWith('content-range: bytes 3-9/20\r\ncontent-length: 7\r\n'), 'and back')

  const date = 'Fri, 15 Jan 2027 08:00:10 GMT'
  const wire = head.wireHead(b, date, false)
  t.equal(wire, `${b}Date: ${date}\r\n\r\n`, 'completed as the fast front completes a head')
  t.equal(head.wireHead(b, date, false), wire)
  t.equal(head.wireHead(b, 'Fri, 15 Jan 2027 08:00:11 GMT', false), `${b}Date: Fri, 15 Jan 2027 08:00:11 GMT\r\n\r\n`, 'a new second, a new Date')
  t.equal(head.wireHead(b, date, true), `${b}Date: ${date}\r\nConnection: close\r\n\r\n`, 'close')
  t.equal(head.wireHead(head.whole, date, false), `${head.whole}Date: ${date}\r\n\r\n`, 'another head')
  t.equal(head.wireHead(b, '', false), `${b}\r\n`, 'a head with a Date of its own gets none added')

  // Age moves: re-rendered, and the range head with it
  const later = heads.get(obj, 590, T0 + 11_000)!
  t.equal(later, head, 'the same HitHead, re-rendered')
  t.match(later.partial(0, 9, size), /\r\nage: 16\r\n/, 'the range head carries the new Age')
})

t.test('Age and ttl: one render per (Age, ttl) pair, a new one when either moves', async (t) => {
  // Count renders: the point of the cache is that a hot hit builds no header at all.
  const render = HitHead.prototype.render
  let renders = 0
  HitHead.prototype.render = function (this: HitHead, ...args: Parameters<HitHead['render']>) {
    renders++
    render.apply(this, args)
  }
  t.teardown(() => { HitHead.prototype.render = render })
  const heads = new HitHeads(RESPONDER)
  const obj = object(BASE_HEADERS, { initialAgeSeconds: 0 })
  const first = heads.get(obj, 600, T0)!
  const text = first.whole
  t.ok(first.holds(0, 600))
  t.match(text, /\r\nage: 0\r\n/)
  t.equal(renders, 1)
  for (const ms of [0, 1, 500, 999]) {
    const same = heads.get(obj, 600, T0 + ms)!
    t.equal(same, first, 'the same HitHead object per MemoryObject')
    t.equal(same.whole, text)
  }
  t.equal(renders, 1, 'the same second and ttl: nothing is rendered again')
  const older = heads.get(obj, 600, T0 + 1000)!
  t.equal(renders, 2)
  t.match(older.whole, /\r\nage: 1\r\n/, 'Age moved to 1 s: re-rendered')
  t.ok(older.holds(1, 600))
  t.notOk(older.holds(0, 600))
  const lessTtl = heads.get(obj, 599, T0 + 1000)!
  t.match(lessTtl.whole, /; hit; ttl=599\r\n/, 'ttl moved: re-rendered')
  t.match(lessTtl.whole, /\r\nage: 1\r\n/)
  const back = heads.get(obj, 600, T0 + 1500)!
  t.match(back.whole, /; hit; ttl=600\r\n/, 'any change re-renders, not only decreases')
  t.equal(renders, 4)

  const other = object({ ...BASE_HEADERS, etag: '"v2"' }, { initialAgeSeconds: 0 })
  const otherHead = heads.get(other, 600, T0)!
  t.not(otherHead, first, 'each object has its own head')
  t.match(otherHead.whole, /\r\netag: "v2"\r\n/)
  t.match(heads.get(obj, 600, T0 + 1500)!.whole, /\r\netag: "v1"\r\n/, 'and the first object keeps its own')
})

t.test('Age is capped at 2^31 seconds (RFC 9111 §1.2.2) in the pre-rendered head too', async (t) => {
  const heads = new HitHeads(RESPONDER)
  const head = heads.get(object(BASE_HEADERS, { initialAgeSeconds: 2 ** 40 }), 1, T0)!
  t.match(head.whole, /\r\nage: 2147483648\r\n/)
})

t.test('RFC 9111 §5.2.2.4: fields named by no-cache="..." are not in a hit head', async (t) => {
  const heads = new HitHeads(RESPONDER)
  const obj = object({ ...BASE_HEADERS, 'cache-control': 'max-age=600, no-cache="x-session"', 'x-session': 'abc' })
  const head = heads.get(obj, 10, T0)!
  t.notMatch(head.whole, /\r\nx-session:/)
  t.match(head.whole, /\r\ncache-control: max-age=600, no-cache="x-session"\r\n/)
})

t.test('a stored field node:http would refuse makes the object unsendable, exactly when writeHead throws', async (t) => {
  const refused: Array<[string, string]> = [
    ['x-bad', 'split\r\nset-cookie: evil=1'], // response splitting from a damaged or hostile store
    ['x-bad', 'nul\u0000'],
    ['x-bad', 'del\u007f'],
    ['x-bad', 'euro \u20ac'], // beyond latin1: node:http refuses it; the fast path writes latin1
    ['x bad', 'space in the name'],
    ['x-bad:', 'colon in the name'],
    ['', 'empty name'],
  ]
  const accepted: Array<[string, string]> = [
    ['x-ok', 'tab\tinside'],
    ['x-ok', 'obs-text \u0080\u00ff'],
    ['x-ok', ''],
    ["x-!#$%&'*+.^_`|~", 'every tchar'],
  ]
  const writeHeadThrows = (list: string[]): boolean => {
    const res = new http.ServerResponse(new http.IncomingMessage(new net.Socket()))
    try {
      res.writeHead(200, list)
      return false
    } catch {
      return true
    }
  }
  for (const [name, value] of [...refused, ...accepted]) {
    const obj = object({ ...BASE_HEADERS, [name]: value })
    const list = storedObjectFields(RESPONDER, obj.meta, { hit: true, ttl: 1 }, T0)
    const head = new HitHeads(RESPONDER).get(obj, 1, T0)
    const throws = writeHeadThrows([...list, 'content-length', String(obj.body.length)])
    const shouldRefuse = refused.some(([n, v]) => n === name && v === value)
    t.equal(throws, shouldRefuse, `node:http ${shouldRefuse ? 'refuses' : 'accepts'} ${JSON.stringify([name, value])}`)
    t.equal(head === undefined, throws, `the fast path agrees on ${JSON.stringify([name, value])}`)
  }
})

t.test('HitHead.render: ownDate and sendable are recomputed on every render', async (t) => {
  const head = new HitHead()
  t.notOk(head.holds(0, 0), 'a fresh head holds nothing (not even Age 0)')
  head.render(['Date', STORED_DATE, 'x-a', 'b\nc'], 200, 3, 0, 1)
  t.ok(head.ownDate, 'Date is matched case-insensitively')
  t.notOk(head.sendable)
  head.render(['dates', 'x', 'x-a', 'b'], 200, 3, 1, 1)
  t.notOk(head.ownDate, 'a field merely starting with "date" is not Date')
  t.ok(head.sendable, 'a later good render is sendable again')
  t.equal(head.whole, 'HTTP/1.1 200 OK\r\ndates: x\r\nx-a: b\r\ncontent-length: 3\r\n')
})

t.test('HitWires: one buffer per body and Date while the second lasts; two bodies never share bytes; bounded', async (t) => {
  const { HitWires, MAX_HIT_WIRES } = await import('../../../edge/proxy/hit-head.ts')
  const wires = new HitWires()
  const head = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n'
  const a = Buffer.from('aa')
  const b = Buffer.from('bb')
  const now = Date.UTC(2026, 0, 5, 12, 0, 0)
  const first = wires.get(head, a, 'Mon, 05 Jan 2026 12:00:00 GMT', now)
  t.equal(first.toString('latin1'), `${head}Date: Mon, 05 Jan 2026 12:00:00 GMT\r\n\r\naa`)
  t.equal(wires.get(head, a, 'Mon, 05 Jan 2026 12:00:00 GMT', now + 500), first, 'the same bytes within the second')
  t.equal(wires.get(head, b, 'Mon, 05 Jan 2026 12:00:00 GMT', now + 500).toString('latin1').slice(-2), 'bb', 'the same head with another body: its own bytes')
  t.not(wires.get(head, a, 'Mon, 05 Jan 2026 12:00:01 GMT', now + 500), first, 'another Date: new bytes')
  const own = wires.get(head, a, '', now + 1000)
  t.equal(own.toString('latin1'), `${head}\r\naa`, 'a head with its own Date gets none added')
  const rendered = 'HTTP/1.1 200 OK\r\nage: 1\r\ncontent-length: 2\r\n'
  t.equal(wires.get(rendered, a, '', now + 1000).toString('latin1'), `${rendered}\r\naa`, 'a re-rendered head: new bytes')
  t.equal(wires.get(head, a, '', now + 2000), wires.get(head, a, '', now + 2000), 'kept again in the next second')
  // Past the bound, answers are still right, just not kept.
  for (let i = 0; i < MAX_HIT_WIRES + 10; i++) wires.get(head, Buffer.from([i & 0xff, 1]), '', now + 3000)
  const extra = Buffer.from('zz')
  const x = wires.get(head, extra, '', now + 3000)
  t.equal(x.toString('latin1'), `${head}\r\nzz`)
  t.not(wires.get(head, extra, '', now + 3000), x, 'beyond the bound: built per request')
})
