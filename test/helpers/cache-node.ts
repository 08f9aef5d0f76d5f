/**
 * Starts cache nodes (and temp dirs) for tests, and removes them when the test ends.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '../../lib/log.ts'
import { CACHE_NODE_DEFAULTS, startCacheNode, type CacheNodeOptions, type RunningCacheNode } from '../../edge/cache-node.ts'
import { captureLogs } from './log-capture.ts'

interface Teardown { teardown (fn: () => unknown): void }

/** A fresh temp directory, removed at teardown. */
export async function tempDir (t: Teardown, prefix = 'streamedge-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(() => removeDir(dir))
  return dir
}

function removeDir (dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 })
}

export interface TestNode extends RunningCacheNode {
  /** Parsed JSON log lines written so far. */
  readonly logs: Array<Record<string, unknown>>
  readonly cacheDir: string
}

/** Starts an edge on 127.0.0.1:0 in front of `origin`, with a temp cache dir unless one is given. */
export async function startTestNode (t: Teardown, overrides: Partial<CacheNodeOptions> & { origin?: string }): Promise<TestNode> {
  // A directory we make is removed only after the node on it has closed (its writes have settled).
  const ownDir = overrides.cacheDir === undefined ? await mkdtemp(join(tmpdir(), 'streamedge-test-')) : undefined
  const cacheDir = overrides.cacheDir ?? ownDir!
  const { logs, destination } = captureLogs()
  const node = await startCacheNode({
    ...CACHE_NODE_DEFAULTS,
    role: 'edge',
    id: 'test-edge',
    listen: { host: '127.0.0.1', port: 0 },
    logger: createLogger({ level: 'debug', destination }),
    ...overrides,
    cacheDir,
  })
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    await node.close()
  }
  t.teardown(async () => {
    await close()
    if (ownDir !== undefined) await removeDir(ownDir)
  })
  return { ...node, close, logs, cacheDir }
}
