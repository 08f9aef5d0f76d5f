/**
 * HLS Content Steering for multivariant playlists served by an edge (pure).
 *
 * Adds `#EXT-X-CONTENT-STEERING:SERVER-URI="…",PATHWAY-ID="<edge id>"` and tags every variant
 * (`EXT-X-STREAM-INF`, `EXT-X-I-FRAME-STREAM-INF`) with `PATHWAY-ID="<edge id>"`
 * (draft-pantos-hls-rfc8216bis §4.4.6.6, §4.4.6.2, §4.4.6.3). The steering server then
 * clones this pathway onto the other edges by host (`PATHWAY-CLONES`), so the playlist lists
 * one pathway and stays small. `EXT-X-MEDIA` renditions have no PATHWAY-ID attribute in the
 * spec: they follow their variant through GROUP-ID, and players clone the groups with it.
 *
 * The SERVER-URI must be absolute: a player resolves a relative one against the edge that
 * served the playlist, not against the control plane.
 */

/** Options of {@link addContentSteering}. */
export interface ContentSteeringOptions {
  /** Absolute steering-manifest URL (lib/protocol/steering.ts `steeringServerUri`). */
  readonly serverUri: string
  /** This edge's pathway id (its node id). */
  readonly pathwayId: string
}

const STEERING_TAG = '#EXT-X-CONTENT-STEERING:'
const VARIANT_TAGS = ['#EXT-X-STREAM-INF:', '#EXT-X-I-FRAME-STREAM-INF:'] as const
const PATHWAY_ID_RE = /^[A-Za-z0-9._-]{1,64}$/
const PATHWAY_ATTR_RE = /(^|,)PATHWAY-ID="[^"]*"/

/** True for a multivariant (master) playlist: it lists variant streams. */
export function isMultivariantPlaylist (text: string): boolean {
  return text.startsWith('#EXTM3U') && text.includes('#EXT-X-STREAM-INF:')
}

/**
 * The playlist with content steering added. Media playlists and anything that is not a
 * playlist come back unchanged. An existing EXT-X-CONTENT-STEERING tag and PATHWAY-ID
 * attributes are replaced: the CDN, not the origin, steers between its edges.
 */
export function addContentSteering (playlist: string, options: ContentSteeringOptions): string {
  checkOptions(options)
  if (!isMultivariantPlaylist(playlist)) return playlist
  const eol = playlist.includes('\r\n') ? '\r\n' : '\n'
  const lines = playlist.split(/\r?\n/)
  const out: string[] = []
  const tag = `${STEERING_TAG}SERVER-URI="${options.serverUri}",PATHWAY-ID="${options.pathwayId}"`
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? ''
    if (line.startsWith(STEERING_TAG)) continue
    if (i === 0) {
      out.push(line, tag)
      continue
    }
    out.push(withPathway(line, options.pathwayId))
  }
  return out.join(eol)
}

function withPathway (line: string, pathwayId: string): string {
  const tagName = VARIANT_TAGS.find((t) => line.startsWith(t))
  if (tagName === undefined) return line
  const attrs = line.slice(tagName.length)
  const attr = `PATHWAY-ID="${pathwayId}"`
  if (PATHWAY_ATTR_RE.test(attrs)) return tagName + attrs.replace(PATHWAY_ATTR_RE, `$1${attr}`)
  return `${tagName}${attrs},${attr}`
}

function checkOptions (options: ContentSteeringOptions): void {
  if (!PATHWAY_ID_RE.test(options.pathwayId)) {
    throw new TypeError(`Expected options.pathwayId to be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(options.pathwayId)}`)
  }
  // A quoted-string may not hold '"', CR or LF (RFC 8216 §4.2).
  if (!/^https?:\/\/[^"\r\n\s]+$/.test(options.serverUri)) {
    throw new TypeError(`Expected options.serverUri to be an absolute http(s) URL without quotes or spaces, got ${JSON.stringify(options.serverUri)}`)
  }
}
