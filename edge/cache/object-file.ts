/**
 * The disk tier's file format: one file per object, self-describing and checksummed,
 * so a restart can rebuild the index from the files alone and a damaged file is
 * recognised and dropped instead of served.
 *
 * Layout (all integers big-endian):
 *
 *   offset  size  field
 *   0       6     magic "SEOBJ\0"
 *   6       2     u16 format version (OBJECT_FILE_VERSION)
 *   8       4     u32 header length H (bytes of JSON)
 *   12      H     header: UTF-8 JSON { v, key, meta: ObjectMeta, bodyBytes, bodyCrc32 }
 *   12+H    4     u32 crc32 of bytes 0 .. 12+H-1 (magic, version, length and JSON)
 *   16+H    N     body, N = bodyBytes; its crc32 is header.bodyCrc32
 *
 * A file is stored at `objects/<h[0..1]>/<h[2..3]>/<h>`, h = hex sha256 of the key.
 * The header repeats the key so a file renamed onto another key's path (or a hash
 * collision) is caught. Bumping OBJECT_FILE_VERSION makes older files invalid: they
 * are deleted on open, never served. Checksums are zlib.crc32 (Node >= 20.15).
 */
import { createHash } from 'node:crypto'
import { read } from 'node:fs'
import { crc32 } from 'node:zlib'
import { open, type FileHandle } from 'node:fs/promises'
import type { ObjectMeta } from './types.ts'

/** Current on-disk format version; files with any other version are deleted on open. */
export const OBJECT_FILE_VERSION = 1

/** The first 6 bytes of every object file. */
export const OBJECT_FILE_MAGIC: Buffer = Buffer.from('SEOBJ\0', 'latin1')

/** Bytes before the JSON header: magic, u16 version, u32 header length. */
export const OBJECT_FILE_PREFIX_BYTES = 12

/** Upper bound on the JSON header, so a corrupt length never makes us allocate gigabytes. */
export const MAX_HEADER_BYTES = 1024 * 1024

/** Bytes read up front when opening a file; enough for the header of almost every object. */
export const HEADER_PROBE_BYTES = 4096

const CRC_BYTES = 4

/** The decoded JSON header of an object file. */
export interface ObjectHeader {
  readonly v: number
  readonly key: string
  readonly meta: ObjectMeta
  readonly bodyBytes: number
  readonly bodyCrc32: number
}

/**
 * Result of decoding a file's head from its first bytes: `ok` with the header and the
 * body offset, `short` when more bytes are needed (`needBytes` from offset 0), or
 * `invalid` with a reason for the corruption report.
 */
export type HeadDecodeResult =
  | { readonly status: 'ok', readonly header: ObjectHeader, readonly headBytes: number }
  | { readonly status: 'short', readonly needBytes: number }
  | { readonly status: 'invalid', readonly reason: string }

/** What readObjectHead found: a checked header, or why the file is invalid; `bytes` is everything read. */
export type ObjectHeadReadResult =
  | { readonly status: 'ok', readonly header: ObjectHeader, readonly headBytes: number, readonly bytes: Buffer }
  | { readonly status: 'invalid', readonly reason: string, readonly bytes: Buffer }

/** Hex sha256 of a cache key: the object's file name. */
export function hashKey (key: string): string {
  return createHash('sha256').update(key).digest('hex')
}

/** Path of an object file relative to `objects/`: `<h[0..1]>/<h[2..3]>/<h>`. */
export function objectRelativePath (hash: string): string {
  return `${hash.slice(0, 2)}/${hash.slice(2, 4)}/${hash}`
}

/** True when `name` looks like an object file name (64 lower-case hex digits). */
export function isObjectFileName (name: string): boolean {
  return /^[0-9a-f]{64}$/.test(name)
}

/**
 * Everything that precedes the body in an object file. Throws a RangeError when the
 * header would exceed MAX_HEADER_BYTES.
 */
export function encodeObjectHead (meta: ObjectMeta, body: Buffer): Buffer {
  return encodeObjectHeadFor(meta, body.length, crc32(body))
}

/**
 * Everything that precedes a body of `bodyBytes` bytes whose crc32 is already known (a
 * metadata rewrite keeps the body and its checksum). Throws like encodeObjectHead.
 */
export function encodeObjectHeadFor (meta: ObjectMeta, bodyBytes: number, bodyCrc32: number): Buffer {
  const header: ObjectHeader = {
    v: OBJECT_FILE_VERSION,
    key: meta.key,
    meta,
    bodyBytes,
    bodyCrc32,
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8')
  if (json.length > MAX_HEADER_BYTES) {
    throw new RangeError(`Object header of ${json.length} bytes exceeds ${MAX_HEADER_BYTES} bytes`)
  }
  const head = Buffer.allocUnsafe(OBJECT_FILE_PREFIX_BYTES + json.length + CRC_BYTES)
  OBJECT_FILE_MAGIC.copy(head, 0)
  head.writeUInt16BE(OBJECT_FILE_VERSION, 6)
  head.writeUInt32BE(json.length, 8)
  json.copy(head, OBJECT_FILE_PREFIX_BYTES)
  const crcOffset = OBJECT_FILE_PREFIX_BYTES + json.length
  head.writeUInt32BE(crc32(head.subarray(0, crcOffset)), crcOffset)
  return head
}

/** Decodes and checks the head of an object file from `buf`, which starts at file offset 0. */
export function decodeObjectHead (buf: Buffer): HeadDecodeResult {
  if (buf.length < OBJECT_FILE_PREFIX_BYTES) return { status: 'short', needBytes: OBJECT_FILE_PREFIX_BYTES }
  if (!buf.subarray(0, OBJECT_FILE_MAGIC.length).equals(OBJECT_FILE_MAGIC)) return invalid('bad magic')
  const version = buf.readUInt16BE(6)
  if (version !== OBJECT_FILE_VERSION) return invalid(`unsupported format version ${version}`)
  const jsonBytes = buf.readUInt32BE(8)
  if (jsonBytes > MAX_HEADER_BYTES) return invalid(`header length ${jsonBytes} out of range`)
  const crcOffset = OBJECT_FILE_PREFIX_BYTES + jsonBytes
  const headBytes = crcOffset + CRC_BYTES
  if (buf.length < headBytes) return { status: 'short', needBytes: headBytes }
  if (crc32(buf.subarray(0, crcOffset)) !== buf.readUInt32BE(crcOffset)) return invalid('header checksum mismatch')
  let parsed: unknown
  try {
    parsed = JSON.parse(buf.toString('utf8', OBJECT_FILE_PREFIX_BYTES, crcOffset))
  } catch {
    return invalid('header is not valid JSON')
  }
  if (!isObjectHeader(parsed)) return invalid('header fields are invalid')
  return { status: 'ok', header: parsed, headBytes }
}

/**
 * Reads and decodes the head of an open object file (a FileHandle or a descriptor) of
 * `fileBytes` bytes. Reads `probeBytes` first (callers pass the whole file size to get
 * the body in the same read) and more only for unusually large headers.
 */
export async function readObjectHead (
  fh: FileHandle | number,
  fileBytes: number,
  probeBytes: number = HEADER_PROBE_BYTES,
): Promise<ObjectHeadReadResult> {
  let bytes = await readAt(fh, 0, Math.min(fileBytes, Math.max(probeBytes, OBJECT_FILE_PREFIX_BYTES)))
  for (;;) {
    const result = decodeObjectHead(bytes)
    if (result.status !== 'short') return { ...result, bytes }
    if (result.needBytes > fileBytes || bytes.length >= result.needBytes) {
      return { status: 'invalid', reason: 'file is shorter than its header', bytes }
    }
    const rest = await readAt(fh, bytes.length, result.needBytes - bytes.length)
    bytes = Buffer.concat([bytes, rest])
  }
}

/**
 * Reads exactly `length` bytes at `position` of a FileHandle or a descriptor, or fewer
 * only when the file ends first.
 */
export async function readAt (fh: FileHandle | number, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length)
  let filled = 0
  while (filled < length) {
    const bytesRead = typeof fh === 'number'
      ? await readFd(fh, buf, filled, length - filled, position + filled)
      : (await fh.read(buf, filled, length - filled, position + filled)).bytesRead
    if (bytesRead === 0) break
    filled += bytesRead
  }
  return filled === length ? buf : buf.subarray(0, filled)
}

/**
 * fsyncs a directory, so the entries created, renamed or removed in it survive a power
 * loss (fsync of a file does not persist its name: fsync(2), "Notes").
 */
export async function syncDir (path: string): Promise<void> {
  const fh = await open(path, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

// The callback API: a disk hit is one pread, without a FileHandle's promise machinery.
function readFd (fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, offset, length, position, (err, bytesRead) => { if (err === null) resolve(bytesRead); else reject(err) })
  })
}

function invalid (reason: string): HeadDecodeResult {
  return { status: 'invalid', reason }
}

function isUint (value: unknown, max: number = Number.MAX_SAFE_INTEGER): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= max
}

// The header checksum already rules out random damage; this catches files written by
// a buggy writer with the right version, so a bad meta never reaches the HTTP layer.
function isObjectHeader (value: unknown): value is ObjectHeader {
  if (typeof value !== 'object' || value === null) return false
  const h = value as Record<string, unknown>
  if (h['v'] !== OBJECT_FILE_VERSION || typeof h['key'] !== 'string') return false
  if (!isUint(h['bodyBytes']) || !isUint(h['bodyCrc32'], 0xffffffff)) return false
  const meta = h['meta']
  if (typeof meta !== 'object' || meta === null) return false
  const m = meta as Record<string, unknown>
  return m['key'] === h['key'] &&
    m['bodyBytes'] === h['bodyBytes'] &&
    isUint(m['status']) &&
    typeof m['headers'] === 'object' && m['headers'] !== null &&
    typeof m['requestTimeMs'] === 'number' &&
    typeof m['responseTimeMs'] === 'number' &&
    typeof m['initialAgeSeconds'] === 'number' &&
    typeof m['freshnessLifetimeSeconds'] === 'number'
}
