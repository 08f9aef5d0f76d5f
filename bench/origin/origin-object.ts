import { createHash } from 'node:crypto'
import { extname } from 'node:path'

/**
 * One servable representation: metadata is known up front, the body may be built lazily
 * (synthetic objects), so HEAD and 304 answers never materialise it.
 */
export interface OriginObject {
  readonly size: number
  /** Strong validator, quoted (RFC 9110 §8.8.3). */
  readonly etag: string
  /** Whole seconds, because HTTP dates carry no finer precision (RFC 9110 §5.6.7). */
  readonly lastModifiedMs: number
  readonly contentType: string
  readonly cacheControl: string
  body (): Buffer
}

/** Cache-Control for objects whose bytes never change under their URL. */
export const IMMUTABLE_CACHE_CONTROL = 'public, max-age=31536000, immutable'

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.ts': 'video/mp2t',
  '.mp4': 'video/mp4',
  '.m4s': 'video/iso.segment',
  '.m4a': 'audio/mp4',
  '.aac': 'audio/aac',
  '.vtt': 'text/vtt',
  '.json': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
}

/** Content-Type by file extension; HLS types follow RFC 8216 §4 and the ISO BMFF segment registration. */
export function contentTypeFor (path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream'
}

/** Quoted strong ETag from a content hash (or from any string that fully determines the content). */
export function strongEtag (content: Buffer | string): string {
  return `"${createHash('sha256').update(content).digest('base64url').slice(0, 22)}"`
}

/** An OriginObject over a body that is already in memory. */
export function makeStaticObject (body: Buffer, meta: { contentType: string, cacheControl: string, lastModifiedMs: number }): OriginObject {
  return {
    size: body.length,
    etag: strongEtag(body),
    lastModifiedMs: Math.floor(meta.lastModifiedMs / 1000) * 1000,
    contentType: meta.contentType,
    cacheControl: meta.cacheControl,
    body: () => body,
  }
}
