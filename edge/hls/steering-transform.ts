/**
 * HLS Content Steering on the edge: a master (multivariant) playlist served to a player
 * gets EXT-X-CONTENT-STEERING pointing at the control plane's steering manifest for this
 * session (its token), with this edge as the pathway. The stored playlist stays as the
 * origin sent it; the rewrite happens per response because the token differs per session.
 */
import type { IncomingMessage } from 'node:http'
import { PATHWAY_ID_RE, steeringServerUri } from '../../lib/protocol/steering.ts'
import { addContentSteering, isMultivariantPlaylist } from './content-steering.ts'
import { directoryOf, isPlaylistUrl } from './media-kind.ts'

/**
 * A body transform for the pipeline (CacheProxyOptions.bodyTransform) that adds content
 * steering to master playlists. `R` is whatever the caller knows the request by (node:http's
 * IncomingMessage, or the fast path's token), `tokenOf` finds the session's token in it.
 */
export function steeringTransform<R = IncomingMessage> (
  controlPlaneUrl: string,
  pathwayId: string,
  tokenOf: (req: R) => string | undefined,
): (req: R, url: string) => ((body: Buffer) => Buffer | undefined) | undefined {
  // Checked once here: later, a bad id or URL would throw on every master playlist served.
  if (!PATHWAY_ID_RE.test(pathwayId)) {
    throw new TypeError(`Expected pathwayId to be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(pathwayId)}`)
  }
  if (!URL.canParse(controlPlaneUrl) || !/^https?:$/.test(new URL(controlPlaneUrl).protocol)) {
    throw new TypeError(`Expected controlPlaneUrl to be an absolute http(s) URL, got ${JSON.stringify(controlPlaneUrl)}`)
  }
  return (req, url) => {
    if (!isPlaylistUrl(url)) return undefined
    const token = tokenOf(req)
    return (body) => {
      const text = multivariantText(body)
      if (text === undefined) return undefined
      const title = directoryOf(url)
      const serverUri = steeringServerUri(controlPlaneUrl, token === undefined ? { pathwayId, title } : { token, pathwayId })
      return Buffer.from(addContentSteering(text, { serverUri, pathwayId }), 'utf8')
    }
  }
}

// Stored bodies are immutable and hit again and again (a media playlist on every reload):
// whether one is a multivariant playlist is decided once per body, not per response.
const MEDIA_PLAYLIST = ''
const multivariantBodies = new WeakMap<Buffer, string>()

/** The text of `body` when it is a multivariant playlist, else undefined (memoized per body). */
function multivariantText (body: Buffer): string | undefined {
  let text = multivariantBodies.get(body)
  if (text === undefined) {
    // Cheap test first: only multivariant playlists are rewritten.
    const decoded = body.indexOf('#EXT-X-STREAM-INF') < 0 ? MEDIA_PLAYLIST : body.toString('utf8')
    text = decoded !== MEDIA_PLAYLIST && isMultivariantPlaylist(decoded) ? decoded : MEDIA_PLAYLIST
    multivariantBodies.set(body, text)
  }
  return text === MEDIA_PLAYLIST ? undefined : text
}
