import { createCipheriv, createHash } from 'node:crypto'
import { contentTypeFor, strongEtag, type OriginObject } from './origin-object.ts'

/** Largest synthetic object the origin will build. */
export const MAX_SYNTHETIC_BYTES = 512 * 1024 * 1024
/** Default memory budget for built synthetic bodies. */
export const DEFAULT_SYNTHETIC_CACHE_MAX_BYTES = 256 * 1024 * 1024
/** Fixed Last-Modified for synthetic objects, so every origin process agrees on validators. */
export const SYNTHETIC_LAST_MODIFIED_MS = Date.UTC(2024, 0, 1)

const TS_PACKET_BYTES = 188
const TS_PMT_PID = 0x1000
const TS_DATA_PID = 0x0100
const GENERATOR_VERSION = 'streamedge-synthetic-v1'
const NAME = /^[A-Za-z0-9_.~-]+$/
const EXT = /^[A-Za-z0-9]{1,8}$/
const SYNTHETIC_PATH = /^\/synthetic\/([A-Za-z0-9_.~-]+?)-(\d{1,10})\.([A-Za-z0-9]{1,8})$/
const CHUNK_BYTES = 1024 * 1024
const ZEROES = Buffer.alloc(CHUNK_BYTES)

/**
 * The deterministic body of `/synthetic/<name>-<bytes>.<ext>`: AES-256-CTR keystream seeded
 * by all three parts, so any change gives different bytes. For `ts`, every 188-byte packet
 * starts with sync byte 0x47; packet 0 is a PAT, packet 1 a PMT, the rest carry PID 0x100
 * with a running continuity counter. A size that is not a multiple of 188 ends in a partial packet.
 */
export function syntheticBody (name: string, bytes: number, ext: string): Buffer {
  const cleanExt = ext.startsWith('.') ? ext.slice(1) : ext
  checkSyntheticArgs(name, bytes, cleanExt)
  const body = keystream(seedFor(name, bytes, cleanExt), bytes)
  if (cleanExt.toLowerCase() === 'ts') frameTransportStream(body)
  return body
}

/** Parses a `/synthetic/...` path into the arguments of {@link syntheticBody}, or undefined. */
export function parseSyntheticPath (path: string): { name: string, bytes: number, ext: string } | undefined {
  const match = SYNTHETIC_PATH.exec(path)
  if (match === null) return undefined
  const bytes = Number(match[2])
  if (bytes > MAX_SYNTHETIC_BYTES) return undefined
  return { name: match[1] ?? '', bytes, ext: match[3] ?? '' }
}

function checkSyntheticArgs (name: string, bytes: number, ext: string): void {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new TypeError(`Expected name to match ${String(NAME)}, got ${String(name)}`)
  }
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > MAX_SYNTHETIC_BYTES) {
    throw new TypeError(`Expected bytes to be an integer between 0 and ${MAX_SYNTHETIC_BYTES}, got ${String(bytes)}`)
  }
  if (!EXT.test(ext)) throw new TypeError(`Expected ext to match ${String(EXT)}, got ${String(ext)}`)
}

function seedFor (name: string, bytes: number, ext: string): string {
  return `${GENERATOR_VERSION}\0${name}\0${bytes}\0${ext}`
}

// AES-CTR runs at GB/s in OpenSSL; a JS PRNG would dominate benchmark warm-up for big objects.
function keystream (seed: string, bytes: number): Buffer {
  const key = createHash('sha256').update(seed).digest()
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16))
  const out = Buffer.allocUnsafe(bytes)
  for (let offset = 0; offset < bytes; offset += CHUNK_BYTES) {
    const n = Math.min(CHUNK_BYTES, bytes - offset)
    cipher.update(ZEROES.subarray(0, n)).copy(out, offset)
  }
  return out
}

function frameTransportStream (body: Buffer): void {
  const tables = [patPacket(), pmtPacket()]
  let continuity = 0
  for (let offset = 0, index = 0; offset < body.length; offset += TS_PACKET_BYTES, index++) {
    const table = tables[index]
    if (table !== undefined) {
      table.copy(body, offset, 0, Math.min(TS_PACKET_BYTES, body.length - offset))
      continue
    }
    const header = [0x47, (TS_DATA_PID >> 8) & 0x1f, TS_DATA_PID & 0xff, 0x10 | continuity]
    for (let i = 0; i < header.length && offset + i < body.length; i++) body[offset + i] = header[i] ?? 0
    continuity = (continuity + 1) & 0x0f
  }
}

/** @see ISO/IEC 13818-1 §2.4.4.3 (program_association_section) */
function patPacket (): Buffer {
  const section = [0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xe0 | (TS_PMT_PID >> 8), TS_PMT_PID & 0xff]
  return psiPacket(0x0000, section)
}

/** @see ISO/IEC 13818-1 §2.4.4.8 (TS_program_map_section); one private-data stream on the data PID. */
function pmtPacket (): Buffer {
  const section = [
    0x02, 0xb0, 0x12, 0x00, 0x01, 0xc1, 0x00, 0x00,
    0xe0 | (TS_DATA_PID >> 8), TS_DATA_PID & 0xff, 0xf0, 0x00,
    0x06, 0xe0 | (TS_DATA_PID >> 8), TS_DATA_PID & 0xff, 0xf0, 0x00,
  ]
  return psiPacket(TS_PMT_PID, section)
}

function psiPacket (pid: number, section: number[]): Buffer {
  const packet = Buffer.alloc(TS_PACKET_BYTES, 0xff)
  packet.set([0x47, 0x40 | (pid >> 8), pid & 0xff, 0x10, 0x00], 0)
  packet.set(section, 5)
  packet.writeUInt32BE(crc32Mpeg(section), 5 + section.length)
  return packet
}

/** CRC-32/MPEG-2 (poly 0x04C11DB7, no reflection, init all ones) as PSI sections require. */
export function crc32Mpeg (bytes: ArrayLike<number>): number {
  let crc = 0xffffffff
  for (let i = 0; i < bytes.length; i++) {
    crc ^= (bytes[i] ?? 0) << 24
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1
  }
  return crc >>> 0
}

/**
 * Builds synthetic objects on demand and keeps recently used bodies within a byte budget
 * (least recently used first out). Bodies larger than the budget are rebuilt per request.
 */
export class SyntheticStore {
  readonly #maxBytes: number
  #bytes = 0
  readonly #bodies = new Map<string, Buffer>()

  constructor (maxBytes = DEFAULT_SYNTHETIC_CACHE_MAX_BYTES) {
    this.#maxBytes = maxBytes
  }

  /** The object for a `/synthetic/...` path, or undefined when the path is not one. */
  lookup (path: string): OriginObject | undefined {
    const parsed = parseSyntheticPath(path)
    if (parsed === undefined) return undefined
    const { name, bytes, ext } = parsed
    return {
      size: bytes,
      // The generator inputs fully determine the bytes, so hashing them is a valid strong validator.
      etag: strongEtag(seedFor(name, bytes, ext)),
      lastModifiedMs: SYNTHETIC_LAST_MODIFIED_MS,
      contentType: contentTypeFor(`x.${ext}`),
      cacheControl: 'public, max-age=3600',
      body: () => this.#body(path, name, bytes, ext),
    }
  }

  /** Bytes currently held. */
  get bytes (): number {
    return this.#bytes
  }

  #body (key: string, name: string, bytes: number, ext: string): Buffer {
    const cached = this.#bodies.get(key)
    if (cached !== undefined) {
      this.#bodies.delete(key) // re-insert to mark most recently used
      this.#bodies.set(key, cached)
      return cached
    }
    const body = syntheticBody(name, bytes, ext)
    if (bytes > this.#maxBytes) return body
    this.#bodies.set(key, body)
    this.#bytes += bytes
    for (const [oldKey, oldBody] of this.#bodies) {
      if (this.#bytes <= this.#maxBytes) break
      this.#bodies.delete(oldKey)
      this.#bytes -= oldBody.length
    }
    return body
  }
}
