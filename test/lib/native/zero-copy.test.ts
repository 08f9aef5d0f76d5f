import { once } from 'node:events'
import { closeSync, openSync, writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import net, { type AddressInfo, type Socket } from 'node:net'
import { constants, tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { ZeroCopyAddon } from '../../../lib/native/zero-copy.ts'
import { requireZeroCopy } from '../../helpers/zero-copy.ts'
import { patternBody } from '../../edge/cache/store.contract.ts'

const found = requireZeroCopy(t)

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

/** Everything below runs only where the helper works (see requireZeroCopy). */
function suite (addon: ZeroCopyAddon): void {
  t.test('head then file bytes, from an offset, arrive byte for byte', async (t) => {
    const { server, client } = await socketPair(t)
    const file = patternBody(300_000, 7)
    const fd = await tempFile(t, file)
    const head = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n', 'latin1')
    const sent = addon.sendHeadFile(fdOf(server), head, fd, 50_000, 200_000)
    t.equal(sent, head.length + 200_000, 'all of it went at once into an empty socket')
    const got = await receive(client, sent)
    t.ok(got.equals(Buffer.concat([head, file.subarray(50_000, 250_000)])), 'the head, then exactly the range')
  })

  t.test('a socket that fills up: part is sent, the rest reported, never more than asked', async (t) => {
    const { server, client } = await socketPair(t)
    client.pause()
    const file = patternBody(64 * 1024 * 1024, 3)
    const fd = await tempFile(t, file)
    const head = Buffer.from('H\r\n\r\n', 'latin1')
    const sent = addon.sendHeadFile(fdOf(server), head, fd, 0, file.length)
    t.ok(sent > head.length && sent < head.length + file.length, `partial: ${sent} bytes`)
    t.equal(addon.sendHeadFile(fdOf(server), Buffer.alloc(0), fd, sent - head.length, file.length - (sent - head.length)), -constants.errno.EAGAIN, 'a full socket takes nothing: -EAGAIN')
    client.resume()
    const got = await receive(client, sent)
    t.ok(got.subarray(0, sent).equals(Buffer.concat([head, file]).subarray(0, sent)), 'what was sent is the prefix, in order')
  })

  t.test('pages not in the page cache are not sent (no disk read on the event loop)', async (t) => {
    const file = patternBody(1024 * 1024, 5)
    const fd = await tempFile(t, file)
    t.equal(addon.resident(fd, 0, file.length), 1, 'a file just written is cached')
    t.equal(addon.dropCached(fd), 0)
    if (addon.resident(fd, 0, file.length) === 1) {
      t.comment('this temp dir keeps its pages (tmpfs): nothing to drop')
      return
    }
    const { server } = await socketPair(t)
    t.equal(addon.sendHeadFile(fdOf(server), Buffer.from('head'), fd, 0, file.length), -constants.errno.ENODATA, 'nothing sent, not even the head')
  })

  t.test('wrong arguments throw a TypeError', async (t) => {
    t.throws(() => addon.sendHeadFile(-1, 'head' as unknown as Buffer, 0, 0, 1), TypeError)
    t.throws(() => addon.sendHeadFile(1, Buffer.alloc(0), 0, -1, 1), TypeError)
    t.throws(() => (addon.resident as unknown as (fd: number) => number)(0), TypeError)
  })
}

if (found !== undefined) suite(found)
