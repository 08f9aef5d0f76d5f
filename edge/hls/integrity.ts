/**
 * Cheap structural checks on segment bodies before the cache admits them, so a
 * truncated segment or an HTML error page served with 200 is never stored. They look
 * at framing only (O(n / packet size)), never decode media.
 */

/** MPEG-TS packet size (ISO/IEC 13818-1 §2.4.3.2). */
export const TS_PACKET_BYTES = 188
/** MPEG-TS sync byte, first byte of every packet. */
export const TS_SYNC_BYTE = 0x47

/** A body check: true when the body may be admitted. */
export type IntegrityCheck = (body: Buffer) => boolean

/**
 * MPEG-TS framing: a non-empty whole number of 188-byte packets, each starting with
 * the 0x47 sync byte.
 */
export function checkMpegTs (body: Buffer): boolean {
  const n = body.length
  if (n === 0 || n % TS_PACKET_BYTES !== 0) return false
  for (let i = 0; i < n; i += TS_PACKET_BYTES) {
    if (body[i] !== TS_SYNC_BYTE) return false
  }
  return true
}

/**
 * ISO BMFF (fMP4 / CMAF) framing: the top-level boxes exactly tile a non-empty body.
 * Each box header is a 32-bit size and a printable four-character type; size 1 means
 * a 64-bit largesize follows, size 0 means "to the end of the body" (ISO/IEC 14496-12
 * §4.2). Nested boxes are not walked.
 */
export function checkFmp4 (body: Buffer): boolean {
  const n = body.length
  if (n === 0) return false
  let at = 0
  while (at < n) {
    if (n - at < 8 || !isFourCc(body, at + 4)) return false
    let size = body.readUInt32BE(at)
    if (size === 0) return true
    if (size === 1) {
      if (n - at < 16) return false
      const large = body.readBigUInt64BE(at + 8)
      if (large > BigInt(n - at)) return false
      size = Number(large)
      if (size < 16) return false
    } else if (size < 8) {
      return false
    }
    if (size > n - at) return false
    at += size
  }
  return true
}

/**
 * Picks the check for a response: by Content-Type when it names a segment type
 * (video/mp2t → MPEG-TS; video|audio/mp4, video/iso.segment → fMP4), else by the
 * path's extension (.ts → MPEG-TS; .m4s .mp4 .m4v .m4a .cmfv .cmfa, or a basename
 * starting with `init` that has no other extension → fMP4). Any other type does not
 * override the extension, so an HTML error page served for `seg1.ts` fails the check.
 */
export function integrityCheckFor (path: string, contentType: string | undefined): IntegrityCheck | undefined {
  const byType = checkForType(contentType)
  if (byType !== undefined) return byType
  return checkForPath(path)
}

function checkForType (contentType: string | undefined): IntegrityCheck | undefined {
  if (contentType === undefined) return undefined
  const semi = contentType.indexOf(';')
  const type = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase()
  switch (type) {
    case 'video/mp2t':
      return checkMpegTs
    case 'video/mp4':
    case 'audio/mp4':
    case 'video/iso.segment':
    case 'audio/iso.segment':
      return checkFmp4
    default:
      return undefined
  }
}

function checkForPath (path: string): IntegrityCheck | undefined {
  const q = path.indexOf('?')
  const p = q < 0 ? path : path.slice(0, q)
  const base = p.slice(p.lastIndexOf('/') + 1).toLowerCase()
  const dot = base.lastIndexOf('.')
  const ext = dot < 0 ? '' : base.slice(dot + 1)
  switch (ext) {
    case 'ts':
      return checkMpegTs
    case 'm4s':
    case 'mp4':
    case 'm4v':
    case 'm4a':
    case 'cmfv':
    case 'cmfa':
      return checkFmp4
    case '':
      return base.startsWith('init') ? checkFmp4 : undefined
    default:
      return undefined
  }
}

// ISO BMFF box types are four printable ASCII characters at the top level.
function isFourCc (body: Buffer, at: number): boolean {
  for (let i = at; i < at + 4; i++) {
    const c = body[i]!
    if (c < 0x20 || c > 0x7e) return false
  }
  return true
}
