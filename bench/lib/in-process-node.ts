/**
 * A cache node inside the bench process, for the scenarios that build whole topologies
 * (offload, hls-audience): 127.0.0.1 port 0, no access log, a silent logger, and the
 * engine defaults for everything the scenario does not set.
 */
import { CACHE_NODE_DEFAULTS, startCacheNode, type CacheNodeOptions, type RunningCacheNode } from '../../edge/cache-node.ts'
import { silentLogger } from '../../lib/log.ts'

/** What a scenario chooses for one of its nodes. */
export type InProcessNodeOptions = Pick<CacheNodeOptions, 'id' | 'role' | 'upstream' | 'cacheDir' | 'memoryMaxBytes' | 'contentPolicy'>

/** Starts the node; the caller closes it. */
export async function startInProcessNode (o: InProcessNodeOptions): Promise<RunningCacheNode> {
  return await startCacheNode({
    ...CACHE_NODE_DEFAULTS,
    ...o,
    listen: { host: '127.0.0.1', port: 0 },
    accessLog: false,
    logger: silentLogger(),
  })
}
