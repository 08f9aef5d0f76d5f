/**
 * The HLS Content Steering contract between edges and the control plane
 * (draft-pantos-hls-rfc8216bis §4.4.6.6 and §7; Apple HLS Content Steering Specification).
 *
 * An edge serving a multivariant playlist points `EXT-X-CONTENT-STEERING:SERVER-URI` at
 * {@link steeringServerUri}: the control plane's manifest endpoint with the session's token and
 * the pathway the playlist was served from. The player adds `_HLS_pathway` and
 * `_HLS_throughput` on every reload.
 */
import { TOKEN_QUERY_PARAM } from './token.ts'

/** Control-plane path of the steering manifest. */
export const STEERING_MANIFEST_PATH = '/v1/steering/manifest'
/** Query parameter naming the pathway the playlist came from (the clones' BASE-ID). */
export const PATHWAY_QUERY_PARAM = 'pathway'
/** Query parameter naming the title (path prefix) when no token is carried. */
export const TITLE_QUERY_PARAM = 'title'
/** Pathway IDs: the characters the spec allows (and node ids use). */
export const PATHWAY_ID_RE = /^[A-Za-z0-9._-]{1,64}$/

/** One steering session as the edge knows it. */
export interface SteeringSession {
  /** The playback token from the request (path or query); omit when tokens are off. */
  readonly token?: string | undefined
  /** Pathway (node id) that served the playlist. */
  readonly pathwayId: string
  /** Title path prefix; needed only without a token (the token's ACL names the title). */
  readonly title?: string | undefined
}

/** Absolute steering-manifest URL for a session. */
export function steeringServerUri (controlPlaneUrl: string, session: SteeringSession): string {
  if (!PATHWAY_ID_RE.test(session.pathwayId)) throw new TypeError(`Expected session.pathwayId to be a pathway id, got ${JSON.stringify(session.pathwayId)}`)
  const url = new URL(STEERING_MANIFEST_PATH, controlPlaneUrl)
  if (session.token !== undefined) url.searchParams.set(TOKEN_QUERY_PARAM, session.token)
  else if (session.title !== undefined) url.searchParams.set(TITLE_QUERY_PARAM, session.title)
  url.searchParams.set(PATHWAY_QUERY_PARAM, session.pathwayId)
  return url.href
}

/** A steering manifest (VERSION 1). */
export interface SteeringManifest {
  readonly VERSION: 1
  /** Seconds until the client reloads. */
  readonly TTL: number
  readonly 'RELOAD-URI'?: string
  readonly 'PATHWAY-PRIORITY': readonly string[]
  readonly 'PATHWAY-CLONES'?: readonly PathwayClone[]
}

/** A pathway created at run time from a base pathway by swapping the host. */
export interface PathwayClone {
  readonly 'BASE-ID': string
  readonly ID: string
  readonly 'URI-REPLACEMENT': { readonly HOST?: string, readonly PARAMS?: Readonly<Record<string, string>> }
}
