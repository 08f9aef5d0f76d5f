/**
 * HLS steering manifests (draft-pantos-hls-rfc8216bis §7.2): `PATHWAY-PRIORITY` lists edges
 * best first, and every edge but the playlist's own pathway is a `PATHWAY-CLONES` entry that
 * copies that pathway with the edge's host, so a playlist naming one pathway can move to any
 * edge at run time without being fetched again. Pure.
 */
import type { PathwayClone, SteeringManifest } from '../../lib/protocol/steering.ts'
import type { NodeSpec } from '../health/node-inventory.ts'

/** Options of {@link buildSteeringManifest}. */
export interface SteeringManifestOptions {
  readonly ttlSeconds: number
  /** Absolute URL the player reloads from. */
  readonly reloadUri: string
  /** The pathway the playlist was served from (the clones' BASE-ID). */
  readonly basePathway: string
  /** Edges in priority order (selector.ts `rankPathways`). */
  readonly pathways: readonly NodeSpec[]
}

/** The manifest. An empty ranking keeps the base pathway: a player with no pathway at all stops. */
export function buildSteeringManifest (options: SteeringManifestOptions): SteeringManifest {
  const priority = options.pathways.length === 0 ? [options.basePathway] : options.pathways.map((n) => n.id)
  const clones: PathwayClone[] = options.pathways
    .filter((n) => n.id !== options.basePathway)
    .map((n) => ({ 'BASE-ID': options.basePathway, ID: n.id, 'URI-REPLACEMENT': { HOST: n.host } }))
  return {
    VERSION: 1,
    TTL: options.ttlSeconds,
    'RELOAD-URI': options.reloadUri,
    'PATHWAY-PRIORITY': priority,
    ...(clones.length === 0 ? {} : { 'PATHWAY-CLONES': clones }),
  }
}
