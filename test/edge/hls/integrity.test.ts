import t from 'tap'
import { checkFmp4, checkMpegTs, integrityCheckFor, TS_PACKET_BYTES } from '../../../edge/hls/integrity.ts'

function tsPackets (count: number): Buffer {
  const body = Buffer.alloc(count * TS_PACKET_BYTES, 0xff)
  for (let i = 0; i < count; i++) body[i * TS_PACKET_BYTES] = 0x47
  return body
}

function box (type: string, payloadBytes: number): Buffer {
  const b = Buffer.alloc(8 + payloadBytes, 0x47) // payload full of 0x47 to tempt a TS check
  b.writeUInt32BE(8 + payloadBytes, 0)
  b.write(type, 4, 'latin1')
  return b
}

function largeBox (type: string, payloadBytes: number, declared = 16 + payloadBytes): Buffer {
  const b = Buffer.alloc(16 + payloadBytes)
  b.writeUInt32BE(1, 0)
  b.write(type, 4, 'latin1')
  b.writeBigUInt64BE(BigInt(declared), 8)
  return b
}

t.test('checkMpegTs', async (t) => {
  t.equal(checkMpegTs(tsPackets(1)), true, 'one packet')
  t.equal(checkMpegTs(tsPackets(1000)), true, 'many packets')
  t.equal(checkMpegTs(Buffer.alloc(0)), false, 'empty')
  t.equal(checkMpegTs(tsPackets(10).subarray(0, 10 * 188 - 1)), false, 'truncated by one byte')
  t.equal(checkMpegTs(Buffer.concat([tsPackets(10), Buffer.from([0x47])])), false, 'one byte too many')
  t.equal(checkMpegTs(Buffer.from([0x47])), false, 'shorter than a packet')
  const lostSync = tsPackets(10)
  lostSync[5 * 188] = 0x48
  t.equal(checkMpegTs(lostSync), false, 'sync byte missing mid-stream')
  const lastLost = tsPackets(10)
  lastLost[9 * 188] = 0
  t.equal(checkMpegTs(lastLost), false, 'sync byte missing on the last packet')
  const html = Buffer.from('<html><body>404 Not Found</body></html>'.padEnd(188 * 2, ' '))
  t.equal(checkMpegTs(html), false, 'an HTML error page of the right length')
  const shifted = Buffer.concat([Buffer.from([0x00]), tsPackets(2).subarray(0, 375)])
  t.equal(checkMpegTs(shifted), false, 'packets off by one byte')
})

t.test('ISO/IEC 14496-12 §4.2 checkFmp4: valid box layouts', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['init segment: ftyp + moov', Buffer.concat([box('ftyp', 16), box('moov', 500)])],
    ['media segment: styp sidx moof mdat', Buffer.concat([box('styp', 12), box('sidx', 44), box('moof', 100), box('mdat', 1000)])],
    ['empty box (header only)', box('free', 0)],
    ['uuid box', box('uuid', 16)],
    ['64-bit largesize', Buffer.concat([box('moof', 8), largeBox('mdat', 100)])],
    ['largesize of exactly 16', largeBox('mdat', 0)],
    ['size 0 runs to the end', (() => {
      const last = box('mdat', 64)
      last.writeUInt32BE(0, 0)
      return Buffer.concat([box('moof', 8), last])
    })()],
    ['size 0 on a header-only tail', (() => {
      const last = box('mdat', 0)
      last.writeUInt32BE(0, 0)
      return last
    })()]
  ]
  for (const [name, body] of cases) t.equal(checkFmp4(body), true, name)
})

t.test('checkFmp4: broken layouts', async (t) => {
  const good = Buffer.concat([box('ftyp', 16), box('moov', 100)])
  const withSize = (b: Buffer, at: number, size: number): Buffer => {
    const c = Buffer.from(b)
    c.writeUInt32BE(size, at)
    return c
  }
  const cases: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['truncated last box', good.subarray(0, good.length - 1)],
    ['trailing bytes after the last box', Buffer.concat([good, Buffer.from([0, 0, 0])])],
    ['trailing partial box header', Buffer.concat([good, Buffer.from([0, 0, 0, 8, 0x66])])],
    ['box larger than the body', withSize(good, 24, 1000)],
    ['size smaller than a header', withSize(good, 0, 7)],
    ['size 2..7 are invalid', withSize(good, 0, 4)],
    ['boxes that overlap rather than tile', withSize(good, 0, 20)],
    ['non-printable box type', (() => {
      const c = Buffer.from(good)
      c[5] = 0x00
      return c
    })()],
    ['an MPEG-TS body', tsPackets(10)],
    ['an HTML page', Buffer.from('<!DOCTYPE html><html><body>error</body></html>')],
    ['largesize with a truncated header', (() => largeBox('mdat', 0).subarray(0, 12))()],
    ['largesize below 16', largeBox('mdat', 8, 8)],
    ['largesize beyond the body', largeBox('mdat', 8, 1000)],
    ['largesize beyond 2^53', largeBox('mdat', 8, 2 ** 60)],
    ['largesize of 0', largeBox('mdat', 8, 0)],
    ['4 bytes only', Buffer.from([0, 0, 0, 8])]
  ]
  for (const [name, body] of cases) t.equal(checkFmp4(body), false, name)
})

t.test('integrityCheckFor picks by Content-Type, then by extension', async (t) => {
  const cases: Array<[string, string | undefined, 'ts' | 'fmp4' | undefined]> = [
    ['/v/seg1.ts', undefined, 'ts'],
    ['/v/SEG1.TS', undefined, 'ts'],
    ['/v/seg1.ts?se_token=x.m4s', undefined, 'ts'], // the query is not the extension
    ['/v/seg1.m4s', undefined, 'fmp4'],
    ['/v/seg1.mp4', undefined, 'fmp4'],
    ['/v/seg1.m4v', undefined, 'fmp4'],
    ['/v/seg1.m4a', undefined, 'fmp4'],
    ['/v/seg1.cmfv', undefined, 'fmp4'],
    ['/v/seg1.cmfa', undefined, 'fmp4'],
    ['/v/init', undefined, 'fmp4'],
    ['/v/init_720p', undefined, 'fmp4'],
    ['/v/init.mp4', undefined, 'fmp4'],
    ['/v/master.m3u8', undefined, undefined],
    ['/v/seg1.aac', undefined, undefined],
    ['/v/subs.vtt', undefined, undefined],
    ['/v/key', undefined, undefined],
    ['/v.ts/readme', undefined, undefined], // the directory's extension does not count
    ['/', undefined, undefined],
    ['/v/seg1', 'video/MP2T', 'ts'],
    ['/v/seg1', 'video/mp2t; charset=binary', 'ts'],
    ['/v/seg1.m4s', 'video/mp2t', 'ts'], // the type wins over the extension
    ['/v/seg1.ts', 'video/mp4', 'fmp4'],
    ['/v/seg1', 'audio/mp4', 'fmp4'],
    ['/v/seg1', ' Video/ISO.Segment ', 'fmp4'],
    ['/v/seg1.ts', 'text/html', 'ts'], // an error page for a segment still gets checked
    ['/v/seg1.ts', 'application/octet-stream', 'ts'],
    ['/v/master.m3u8', 'application/vnd.apple.mpegurl', undefined],
    ['/v/seg1', 'application/octet-stream', undefined],
    ['/v/seg1', '', undefined]
  ]
  for (const [path, type, expected] of cases) {
    const check = integrityCheckFor(path, type)
    const got = check === checkMpegTs ? 'ts' : check === checkFmp4 ? 'fmp4' : check === undefined ? undefined : 'other'
    t.equal(got, expected, `${path} ${type ?? '(no type)'}`)
  }
})
