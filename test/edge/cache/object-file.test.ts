import { createHash } from 'node:crypto'
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import t from 'tap'
import {
  HEADER_PROBE_BYTES,
  MAX_HEADER_BYTES,
  OBJECT_FILE_MAGIC,
  OBJECT_FILE_PREFIX_BYTES,
  OBJECT_FILE_VERSION,
  decodeObjectHead,
  encodeObjectHead,
  hashKey,
  isObjectFileName,
  objectRelativePath,
  readAt,
  readObjectHead,
} from '../../../edge/cache/object-file.ts'
import { makeObject, patternBody } from './store.contract.ts'

/** A head with arbitrary JSON and a correct checksum, for testing the checks behind the checksum. */
function headWithJson (json: string, version: number = OBJECT_FILE_VERSION): Buffer {
  const body = Buffer.from(json, 'utf8')
  const head = Buffer.alloc(OBJECT_FILE_PREFIX_BYTES + body.length + 4)
  OBJECT_FILE_MAGIC.copy(head, 0)
  head.writeUInt16BE(version, 6)
  head.writeUInt32BE(body.length, 8)
  body.copy(head, OBJECT_FILE_PREFIX_BYTES)
  const crcOffset = OBJECT_FILE_PREFIX_BYTES + body.length
  head.writeUInt32BE(crc32(head.subarray(0, crcOffset)), crcOffset)
  return head
}

t.test('the head round-trips and has the documented layout', async (t) => {
  const object = makeObject('example.com/vod/é/seg-1.ts?x=1', patternBody(1234, 1), { headers: { 'set-cookie': ['a=1', 'b=2'] } })
  const head = encodeObjectHead(object.meta, object.body)
  t.ok(head.subarray(0, 6).equals(Buffer.from('SEOBJ\0', 'latin1')), 'magic')
  t.equal(head.readUInt16BE(6), OBJECT_FILE_VERSION, 'u16 version')
  const jsonBytes = head.readUInt32BE(8)
  t.equal(head.length, 12 + jsonBytes + 4, 'prefix + JSON + crc')
  t.equal(head.readUInt32BE(12 + jsonBytes), crc32(head.subarray(0, 12 + jsonBytes)), 'crc32 covers everything before it')
  const json = JSON.parse(head.toString('utf8', 12, 12 + jsonBytes)) as Record<string, unknown>
  t.strictSame(Object.keys(json).sort(), ['bodyBytes', 'bodyCrc32', 'key', 'meta', 'v'])

  const decoded = decodeObjectHead(Buffer.concat([head, object.body]))
  t.equal(decoded.status, 'ok')
  if (decoded.status !== 'ok') return
  t.equal(decoded.headBytes, head.length)
  t.strictSame(decoded.header.meta, object.meta)
  t.equal(decoded.header.key, object.meta.key)
  t.equal(decoded.header.bodyBytes, 1234)
  t.equal(decoded.header.bodyCrc32, crc32(object.body))
})

t.test('a short buffer asks for the bytes it needs', async (t) => {
  const object = makeObject('k', patternBody(10, 1))
  const head = encodeObjectHead(object.meta, object.body)
  t.strictSame(decodeObjectHead(head.subarray(0, 5)), { status: 'short', needBytes: OBJECT_FILE_PREFIX_BYTES })
  t.strictSame(decodeObjectHead(head.subarray(0, 20)), { status: 'short', needBytes: head.length })
})

t.test('damaged or foreign heads are invalid, with a reason', async (t) => {
  const object = makeObject('example.com/a.ts', patternBody(100, 1))
  const good = encodeObjectHead(object.meta, object.body)
  const header = JSON.parse(good.toString('utf8', 12, good.length - 4)) as Record<string, unknown>
  const withMeta = (meta: Record<string, unknown>): string => JSON.stringify({ ...header, meta: { ...object.meta, ...meta } })
  const cases: Array<[string, Buffer, RegExp]> = [
    ['bad magic', Buffer.concat([Buffer.from('XXOBJ\0'), good.subarray(6)]), /magic/],
    ['another version', (() => { const b = Buffer.from(good); b.writeUInt16BE(OBJECT_FILE_VERSION + 1, 6); return b })(), /version 2/],
    ['absurd header length', (() => { const b = Buffer.from(good); b.writeUInt32BE(MAX_HEADER_BYTES + 1, 8); return b })(), /header length/],
    ['flipped JSON byte', (() => { const b = Buffer.from(good); b[20] = (b[20] ?? 0) ^ 1; return b })(), /header checksum/],
    ['flipped checksum byte', (() => { const b = Buffer.from(good); b[b.length - 1] = (b[b.length - 1] ?? 0) ^ 1; return b })(), /header checksum/],
    ['not JSON', headWithJson('{"v":1,'), /not valid JSON/],
    ['JSON says another version', headWithJson(JSON.stringify({ ...header, v: 9 })), /fields/],
    ['meta for another key', headWithJson(withMeta({ key: 'example.com/b.ts' })), /fields/],
    ['meta with another length', headWithJson(withMeta({ bodyBytes: 99 })), /fields/],
    ['negative body length', headWithJson(JSON.stringify({ ...header, bodyBytes: -1 })), /fields/],
    ['missing meta', headWithJson(JSON.stringify({ ...header, meta: null })), /fields/],
    ['a JSON array', headWithJson('[]'), /fields/],
  ]
  for (const [name, buf, reason] of cases) {
    const result = decodeObjectHead(buf)
    t.equal(result.status, 'invalid', name)
    if (result.status === 'invalid') t.match(result.reason, reason, `${name}: ${result.reason}`)
  }
})

t.test('an oversized header is refused at encode time', async (t) => {
  const object = makeObject(`example.com/${'k'.repeat(MAX_HEADER_BYTES)}`, Buffer.alloc(0))
  t.throws(() => encodeObjectHead(object.meta, object.body), RangeError)
})

t.test('paths and names derive from the sha256 of the key', async (t) => {
  const key = 'example.com/vod/t1/seg-1.ts'
  const hash = createHash('sha256').update(key).digest('hex')
  t.equal(hashKey(key), hash)
  t.equal(objectRelativePath(hash), `${hash.slice(0, 2)}/${hash.slice(2, 4)}/${hash}`)
  t.ok(isObjectFileName(hash))
  t.notOk(isObjectFileName(hash.toUpperCase()))
  t.notOk(isObjectFileName(`${hash}.tmp`))
  t.notOk(isObjectFileName(hash.slice(1)))
})

t.test('readObjectHead reads large headers in a second read and refuses truncated ones', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-objfile-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const big = makeObject('example.com/big-headers.ts', patternBody(50, 1), { headers: { 'x-long': 'v'.repeat(3 * HEADER_PROBE_BYTES) } })
  const head = encodeObjectHead(big.meta, big.body)
  const path = join(dir, 'object')
  await writeFile(path, Buffer.concat([head, big.body]))
  const fh = await open(path, 'r')
  t.teardown(() => fh.close())
  const size = head.length + big.body.length
  const result = await readObjectHead(fh, size)
  t.equal(result.status, 'ok')
  if (result.status === 'ok') t.strictSame(result.header.meta, big.meta)
  t.ok(result.bytes.length >= head.length, 'returns what it read')
  const byFd = await readObjectHead(fh.fd, size)
  t.strictSame(byFd, result, 'a raw descriptor reads the same (the disk tier keeps descriptors open)')
  t.ok((await readAt(fh.fd, head.length, 100)).equals(big.body), 'readAt by descriptor stops at the end of the file')

  const cut = join(dir, 'cut')
  await writeFile(cut, head.subarray(0, HEADER_PROBE_BYTES + 10))
  const cutFh = await open(cut, 'r')
  t.teardown(() => cutFh.close())
  const truncated = await readObjectHead(cutFh, HEADER_PROBE_BYTES + 10)
  t.equal(truncated.status === 'invalid' ? truncated.reason : truncated.status, 'file is shorter than its header')

  const empty = join(dir, 'empty')
  await writeFile(empty, '')
  const emptyFh = await open(empty, 'r')
  t.teardown(() => emptyFh.close())
  t.equal((await readObjectHead(emptyFh, 0)).status, 'invalid', 'an empty file is invalid')
})
