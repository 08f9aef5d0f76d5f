/**
 * Pure-TypeScript structure checks for HLS media: MPEG-TS packet framing with PAT/PMT,
 * and the top-level box walk of ISO BMFF (fMP4) files. Shared by origin and cache tests.
 */

const TS_PACKET_BYTES = 188

/** Summary of an MPEG-TS buffer. */
export interface TransportStreamInfo {
  readonly packets: number
  /** Offsets of packets whose first byte is not 0x47. */
  readonly badSyncOffsets: readonly number[]
  readonly hasPat: boolean
  /** PMT PIDs announced by the first PAT. */
  readonly pmtPids: readonly number[]
  /** stream_type values listed by the first PMT (0x1b H.264, 0x0f AAC ADTS). */
  readonly streamTypes: readonly number[]
}

/** Walks 188-byte packets and parses the first PAT and PMT (ISO/IEC 13818-1 §2.4.4). */
export function inspectTransportStream (buf: Buffer): TransportStreamInfo {
  const badSyncOffsets: number[] = []
  let pmtPids: number[] | undefined
  let streamTypes: number[] | undefined
  for (let offset = 0; offset < buf.length; offset += TS_PACKET_BYTES) {
    if (buf[offset] !== 0x47) {
      badSyncOffsets.push(offset)
      continue
    }
    const packet = buf.subarray(offset, offset + TS_PACKET_BYTES)
    const pid = ((packet[1] ?? 0) & 0x1f) << 8 | (packet[2] ?? 0)
    const section = psiSection(packet)
    if (section === undefined) continue
    if (pid === 0 && pmtPids === undefined) pmtPids = patPmtPids(section)
    else if (pmtPids?.includes(pid) === true && streamTypes === undefined) streamTypes = pmtStreamTypes(section)
  }
  return {
    packets: Math.ceil(buf.length / TS_PACKET_BYTES),
    badSyncOffsets,
    hasPat: pmtPids !== undefined,
    pmtPids: pmtPids ?? [],
    streamTypes: streamTypes ?? [],
  }
}

function psiSection (packet: Buffer): Buffer | undefined {
  const payloadUnitStart = ((packet[1] ?? 0) & 0x40) !== 0
  const adaptation = ((packet[3] ?? 0) >> 4) & 0x3
  if (!payloadUnitStart || (adaptation & 0x1) === 0) return undefined
  let offset = 4 + (adaptation === 0x3 ? 1 + (packet[4] ?? 0) : 0)
  offset += 1 + (packet[offset] ?? 0) // pointer_field
  const sectionLength = ((packet[offset + 1] ?? 0) & 0x0f) << 8 | (packet[offset + 2] ?? 0)
  return packet.subarray(offset, offset + 3 + sectionLength)
}

function patPmtPids (section: Buffer): number[] {
  const pids: number[] = []
  for (let i = 8; i + 4 <= section.length - 4; i += 4) {
    const program = section.readUInt16BE(i)
    if (program !== 0) pids.push(section.readUInt16BE(i + 2) & 0x1fff)
  }
  return pids
}

function pmtStreamTypes (section: Buffer): number[] {
  const types: number[] = []
  const programInfoLength = section.readUInt16BE(10) & 0x0fff
  for (let i = 12 + programInfoLength; i + 5 <= section.length - 4;) {
    types.push(section[i] ?? 0)
    i += 5 + (section.readUInt16BE(i + 3) & 0x0fff)
  }
  return types
}

/** One ISO BMFF box. */
export interface Mp4Box {
  readonly type: string
  readonly offset: number
  readonly size: number
}

/** Lists the boxes in `buf` (top level, or inside a container's payload); throws on a box that overruns. */
export function listBoxes (buf: Buffer): Mp4Box[] {
  const boxes: Mp4Box[] = []
  for (let offset = 0; offset < buf.length;) {
    if (offset + 8 > buf.length) throw new Error(`Truncated box header at ${offset}`)
    let size = buf.readUInt32BE(offset)
    const type = buf.toString('latin1', offset + 4, offset + 8)
    if (size === 1) size = Number(buf.readBigUInt64BE(offset + 8))
    else if (size === 0) size = buf.length - offset
    if (size < 8 || offset + size > buf.length) throw new Error(`Box ${type} at ${offset} has bad size ${size}`)
    boxes.push({ type, offset, size })
    offset += size
  }
  return boxes
}

/** True when a four-character code occurs anywhere in `buf` (cheap sample-entry probe: avc1, mp4a). */
export function containsFourCc (buf: Buffer, fourCc: string): boolean {
  return buf.includes(Buffer.from(fourCc, 'latin1'))
}
