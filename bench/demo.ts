/**
 * `streamedge start`: a complete local CDN on this machine, with playable demo content.
 * Starts the demo origin and the configured number of edges on loopback, prints the
 * URLs a player can open, and stops everything on SIGINT/SIGTERM.
 */
import { mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { StreamedgeConfig } from '../config/params.ts'
import { startEdge } from '../edge/main.ts'
import { createLogger } from '../lib/log.ts'
import type { RunningCacheNode } from '../edge/cache-node.ts'
import { startOrigin } from './origin/origin-server.ts'

export interface RunningDemo {
  readonly originUrl: string
  readonly edges: readonly RunningCacheNode[]
  /** Demo content paths (VOD masters and the live stream). */
  readonly titles: readonly string[]
  close (): Promise<void>
}

/** Starts the demo CDN. Cache directories live under `edge.cacheDir` (one per edge). */
export async function startDemo (config: Readonly<StreamedgeConfig>): Promise<RunningDemo> {
  const host = config.start.listenHost
  const port = (i: number): number => config.start.basePort === 0 ? 0 : config.start.basePort + i
  const logger = createLogger({ level: config.log.level, bindings: { role: 'demo' } })
  const origin = await startOrigin({ host, port: port(0) })
  const edges: RunningCacheNode[] = []
  const root = resolve(config.edge.cacheDir, 'demo')
  for (let i = 1; i <= config.start.edges; i++) {
    const id = `edge-${i}`
    const cacheDir = join(root, id)
    mkdirSync(cacheDir, { recursive: true })
    const edgeConfig: Readonly<StreamedgeConfig> = {
      ...config,
      edge: { ...config.edge, id, origin: origin.url, cacheDir, listen: { host, port: port(i) } },
    }
    edges.push(await startEdge(edgeConfig, { logger: logger.child({ role: 'edge', node: id }), processMetrics: false }))
  }
  const titles = ['/vod/bbb-test/master.m3u8', '/vod/bars/master.m3u8', '/live/bbb-test/master.m3u8']
  return {
    originUrl: origin.url,
    edges,
    titles,
    async close () {
      await Promise.all(edges.map((e) => e.close()))
      await origin.close()
    },
  }
}

/** Prints what to open (on stderr, so stdout stays pure JSON log lines). */
export function printDemo (demo: RunningDemo): void {
  const lines = [
    '',
    'streamedge demo CDN is up.',
    `  origin: ${demo.originUrl}`,
    ...demo.edges.map((e, i) => `  edge-${i + 1}: ${e.url}  (metrics: ${e.url}/metrics)`),
    '',
    'Play through an edge (ffplay, VLC, or any HLS player):',
    ...demo.titles.map((t) => `  ${demo.edges[0]!.url}${t}`),
    '',
    'Press Ctrl-C to stop.',
    '',
  ]
  process.stderr.write(lines.join('\n'))
}
