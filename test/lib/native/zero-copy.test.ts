import { once } from 'node:events'
import { closeSync, fstatSync, openSync, readSync, unlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import net, { type AddressInfo, type Socket } from 'node:net'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pageCacheCheck, type ZeroCopyAddon } from '../../../lib/native/zero-copy.ts'
import { requireZeroCopy } from '../../helpers/zero-copy.ts'
import { patternBody } from '../../edge/cache/store.contract.ts'


interface Pair { readonly server: Socket, readonly client: Socket }

/** A connected pair over loopback: `server` is the accepted side, whose descriptor the helper writes to. */
async function socketPair (t: Test): Promise<Pair> {
  const listener = net.createServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const accepted = once(listener, 'connection')
  const client = net.connect((listener.address() as AddressInfo).port, '127.0.0.1')
  const [server] = await accepted as [Socket]
  await once(client, 'connect').catch(() => {})
  t.teardown(() => { client.destroy(); server.destroy(); listener.close() })
  return { server, client }
}


function fdOf (socket: Socket): number {
  const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd
  if (typeof fd !== 'number' || fd < 0) throw new Error('no descriptor')
  return fd
}

async function tempFile (t: Test, bytes: Buffer): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-zc-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'body')
  writeFileSync(path, bytes)
  const fd = openSync(path, 'r')
  t.teardown(() => closeSync(fd))
  return fd
}

/** Reads from `socket` until `length` bytes came (or it closed). */
async function receive (socket: Socket, length: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let got = 0
  for await (const chunk of socket) {
    parts.push(chunk as Buffer)
    got += (chunk as Buffer).length
    if (got >= length) break
  }
  return Buffer.concat(parts)
}

/** Everything below runs against the built helper (requireZeroCopy fails the file without it). */
function suite (addon: ZeroCopyAddon): void {
  /** A range whose pages were dropped is refused whole, its readahead queued, and sent once cached again. */
  async function refusesUncached (t: Test): Promise<void> {
    const file = patternBody(1024 * 1024, 5)
    const fd = await tempFile(t, file)
    t.equal(addon.resident(fd, 0, file.length), 1, 'a file just written is cached')
    t.equal(addon.dropCached(fd), 0)
    if (addon.resident(fd, 0, file.length) === 1) {
      t.comment('this temp dir keeps its pages (tmpfs): nothing to drop')
      return
    }
    const { server } = await socketPair(t)
    t.equal(addon.sendHeadFile(fdOf(server), 'head', fd, 256 * 1024, 512 * 1024), -constants.errno.ENODATA, 'nothing sent, not even the head')
    // the refusal queued readahead of that range: nothing else reads the file here
    let cached = 0
    for (let i = 0; i < 500 && cached !== 1; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10))
      cached = addon.resident(fd, 256 * 1024, 512 * 1024)
    }
    t.equal(cached, 1, 'the refused range is in the page cache again')
    t.equal(addon.sendHeadFile(fdOf(server), 'head', fd, 256 * 1024, 512 * 1024) > 0, true, 'and a later call sends from it')
  }

  t.test('head then file bytes, from an offset, arrive byte for byte', async (t) => {
    const { server, client } = await socketPair(t)
    const file = patternBody(300_000, 7)
    const fd = await tempFile(t, file)
    const head = 'HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n'
    const sent = addon.sendHeadFile(fdOf(server), head, fd, 50_000, 200_000)
    t.equal(sent, head.length + 200_000, 'all of it went at once into an empty socket')
    const got = await receive(client, sent)
    t.ok(got.equals(Buffer.concat([Buffer.from(head, 'latin1'), file.subarray(50_000, 250_000)])), 'the head, then exactly the range')
    t.equal(addon.sendHeadFile(fdOf(server), 'x'.repeat(8191), fd, 0, 1), -constants.errno.E2BIG, 'a head of 8 KiB or more: -E2BIG, nothing sent')
  })

  t.test('a socket that fills up: part is sent, the rest reported, never more than asked', async (t) => {
    const { server, client } = await socketPair(t)
    client.pause()
    const file = patternBody(64 * 1024 * 1024, 3)
    const fd = await tempFile(t, file)
    const head = 'H\r\n\r\n'
    const sent = addon.sendHeadFile(fdOf(server), head, fd, 0, file.length)
    t.ok(sent > head.length && sent < head.length + file.length, `partial: ${sent} bytes`)
    t.equal(addon.sendHeadFile(fdOf(server), '', fd, sent - head.length, file.length - (sent - head.length)), -constants.errno.EAGAIN, 'a full socket takes nothing: -EAGAIN')
    client.resume()
    const got = await receive(client, sent)
    t.ok(got.subarray(0, sent).equals(Buffer.concat([Buffer.from(head), file]).subarray(0, sent)), 'what was sent is the prefix, in order')
  })

  t.test('pages not in the page cache are not sent (no disk read on the event loop), and are read back for a later send', async (t) => {
    await refusesUncached(t)
  })

  t.test('resident: cachestat where the kernel has it, mincore (any Linux) agreeing with it page for page', async (t) => {
    const page = 4096
    const file = patternBody(64 * page, 6)
    const fd = await tempFile(t, file)
    const byCachestat = addon.residentByCachestat(fd, 0, file.length)
    if (byCachestat === -constants.errno.ENOSYS) t.comment('no cachestat here (before Linux 6.5): resident() uses mincore')
    else t.equal(byCachestat, 1, 'cachestat: a file just written is cached')
    t.equal(addon.residentByMincore(fd, 0, file.length), 1, 'mincore: a file just written is cached')
    t.equal(addon.residentByMincore(fd, 5, 0), 1, 'an empty range is')
    t.equal(addon.residentByMincore(fd, page * 3 + 17, page * 10), 1, 'an unaligned range inside it is')
    t.equal(addon.dropCached(fd), 0)
    if (addon.residentByMincore(fd, 0, file.length) === 1) {
      t.comment('this temp dir keeps its pages (tmpfs): nothing to drop')
      return
    }
    // read back pages 8-15 only: a range inside them is cached, one that reaches past them is not
    const back = Buffer.alloc(8 * page)
    t.equal(readSync(fd, back, 0, back.length, 8 * page), back.length)
    const ranges: Array<[number, number]> = [[8 * page, 8 * page], [8 * page + 100, 4 * page], [0, file.length], [7 * page, 2 * page], [15 * page, page + 1], [40 * page, page]]
    const mincore = ranges.map(([at, n]) => addon.residentByMincore(fd, at, n))
    t.same(mincore, [1, 1, 0, 0, 0, 0], 'mincore: pages 8-15 only')
    if (byCachestat !== -constants.errno.ENOSYS) t.same(ranges.map(([at, n]) => addon.residentByCachestat(fd, at, n)), mincore, 'cachestat says the same')
    t.same(ranges.map(([at, n]) => addon.resident(fd, at, n)), mincore, 'and resident(), which the sends ask')
    t.equal(addon.residentByMincore(fd, file.length - 10, 100 * page), 0, 'a range past the end of the file is not (the send then copies)')
    t.equal(addon.residentByMincore(-1, 0, 1), -constants.errno.EBADF, 'a bad descriptor: -EBADF')
  })

  t.test('sendHeadBody: a latin1 head and a body in one send, byte for byte', async (t) => {
    const { server, client } = await socketPair(t)
    const body = patternBody(65_536, 9)
    const head = 'HTTP/1.1 200 OK\r\nX-Name: caf\u00e9\r\nContent-Length: 65536\r\n\r\n'
    const sent = addon.sendHeadBody(fdOf(server), head, body)
    t.equal(sent, head.length + body.length, 'all of it went at once into an empty socket')
    const got = await receive(client, sent)
    t.ok(got.equals(Buffer.concat([Buffer.from(head, 'latin1'), body])), 'the head as latin1 (one byte a character), then the body')
  })

  t.test('sendHeadBody: a full socket takes part, then nothing (-EAGAIN); a long head is refused unsent', async (t) => {
    const { server, client } = await socketPair(t)
    client.pause()
    const body = patternBody(64 * 1024 * 1024, 4)
    const head = 'H\r\n\r\n'
    const sent = addon.sendHeadBody(fdOf(server), head, body)
    t.ok(sent > head.length && sent < head.length + body.length, `partial: ${sent} bytes`)
    t.equal(addon.sendHeadBody(fdOf(server), '', body.subarray(sent - head.length)), -constants.errno.EAGAIN, 'a full socket takes nothing: -EAGAIN')
    client.resume()
    const got = await receive(client, sent)
    t.ok(got.subarray(0, sent).equals(Buffer.concat([Buffer.from(head), body]).subarray(0, sent)), 'what was sent is the prefix, in order')

    const other = await socketPair(t)
    t.equal(addon.sendHeadBody(fdOf(other.server), 'x'.repeat(8191), Buffer.from('body')), -constants.errno.E2BIG, 'a head of 8 KiB or more: -E2BIG')
    t.equal(addon.sendHeadBody(fdOf(other.server), 'x'.repeat(8190), Buffer.alloc(0)), 8190, 'just under it goes')
  })

  t.test('unchanged: the descriptor\'s file is still the one fs.fstatSync described (link, inode, size, mtimeMs to the nanosecond)', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'streamedge-zc-'))
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const path = join(dir, 'body')
    writeFileSync(path, patternBody(10_000, 3))
    // an mtime with a fraction of a millisecond, which Stats.mtimeMs carries as a fraction
    utimesSync(path, 1_700_000_000.123456, 1_700_000_000.123456)
    const fd = openSync(path, 'r+')
    t.teardown(() => closeSync(fd))
    const stat = fstatSync(fd)
    t.not(stat.mtimeMs % 1, 0, 'the mtime has a sub-millisecond part')
    t.equal(addon.unchanged(fd, stat.ino, stat.size, stat.mtimeMs), 1, 'the same file: 1')
    t.equal(addon.unchanged(fd, stat.ino + 1, stat.size, stat.mtimeMs), 0, 'another inode: 0')
    t.equal(addon.unchanged(fd, stat.ino, stat.size, stat.mtimeMs + 0.001), 0, 'another mtime, a microsecond off: 0')
    utimesSync(path, 1_700_000_001, 1_700_000_001)
    t.equal(addon.unchanged(fd, stat.ino, stat.size, stat.mtimeMs), 0, 'touched since: 0')
    const touched = fstatSync(fd)
    writeSync(fd, Buffer.from('more'), 0, 4, 10_000)
    utimesSync(path, touched.atime, touched.mtime)
    t.equal(addon.unchanged(fd, touched.ino, touched.size, touched.mtimeMs), 0, 'grown, mtime put back: 0 (the size)')
    const grown = fstatSync(fd)
    t.equal(addon.unchanged(fd, grown.ino, grown.size, grown.mtimeMs), 1)
    unlinkSync(path)
    t.equal(addon.unchanged(fd, grown.ino, grown.size, grown.mtimeMs), 0, 'unlinked (no link left): 0')
    t.equal(addon.unchanged(1_000_000, grown.ino, grown.size, grown.mtimeMs), -constants.errno.EBADF, 'not a descriptor: -EBADF')
  })

  // last: it switches this process's helper to mincore for good
  t.test('with mincore instead of cachestat (a kernel before 6.5): the same refusal and readahead', async (t) => {
    const fd = await tempFile(t, Buffer.alloc(10))
    if (addon.residentByCachestat(fd, 0, 1) !== -constants.errno.ENOSYS) {
      t.equal(addon.resident(fd, 0, 1), 1)
      t.equal(addon.residentMethod(), 'cachestat', 'cachestat until now')
    }
    addon.useMincore()
    t.equal(addon.residentMethod(), 'mincore')
    t.equal(pageCacheCheck(), 'mincore', 'and the startup log would say so')
    await refusesUncached(t)
  })

  t.test('wrong arguments throw a TypeError', async (t) => {
    t.throws(() => (addon.unchanged as unknown as (fd: number, ino: string) => number)(0, 'x'), TypeError)
    t.throws(() => addon.sendHeadBody(1, Buffer.from('head') as unknown as string, Buffer.alloc(0)), TypeError)
    t.throws(() => addon.sendHeadBody(1, 'head', 'body' as unknown as Buffer), TypeError)
    t.throws(() => addon.sendHeadFile(-1, Buffer.from('head') as unknown as string, 0, 0, 1), TypeError)
    t.throws(() => addon.sendHeadFile(1, '', 0, -1, 1), TypeError)
    t.throws(() => (addon.resident as unknown as (fd: number) => number)(0), TypeError)
    t.throws(() => addon.residentByMincore(0, -1, 1), TypeError)
    t.throws(() => addon.residentByCachestat(0, 0, -1), TypeError)
  })
}

suite(requireZeroCopy())
