/**
 * HLS test glue: a cache node with the HLS runtime wired the way edge/main.ts wires it,
 * and a scripted origin serving the demo origin's live channel on an injected clock (its
 * Date header follows the same clock, so ages are exact).
 */
import { fileURLToPath } from 'node:url'
import http from 'node:http'
import { LiveChannel } from '../../bench/origin/live-channel.ts'
import { loadMediaLibrary, type Title } from '../../bench/origin/media-library.ts'
import { HlsRuntime, type HlsRuntimeOptions } from '../../edge/hls/hls-runtime.ts'
import type { CacheNodeOptions } from '../../edge/cache-node.ts'
import { createLogger } from '../../lib/log.ts'
import { startTestNode, type TestNode } from './cache-node.ts'
import { startScriptedOrigin, type ScriptedOrigin, type ScriptedResponse } from './scripted-origin.ts'
import { captureLogs } from './log-capture.ts'

interface Teardown { teardown (fn: () => unknown): void }

/** A test node with its HLS runtime. */
export interface HlsTestNode {
  readonly node: TestNode
  readonly hls: HlsRuntime
}

/** Starts a cache node with an HLS runtime; both log to `node.logs`. */
export async function startHlsNode (t: Teardown, overrides: Partial<CacheNodeOptions> & { origin?: string }, hlsOptions: Partial<HlsRuntimeOptions> = {}): Promise<HlsTestNode> {
  const { logs, destination } = captureLogs()
  const logger = createLogger({ level: 'debug', destination })
  const hls = new HlsRuntime({
    nodeId: overrides.id ?? 'test-edge',
    logger,
    stripQueryParams: overrides.stripQueryParams ?? [],
    ...(overrides.now === undefined ? {} : { now: overrides.now }),
    ...hlsOptions,
  })
  const node = await startTestNode(t, { accessLog: false, logger, ...overrides, contentPolicy: hls.contentPolicyFor })
  hls.attach(node)
  t.teardown(() => hls.close())
  return { node: { ...node, logs }, hls }
}

const MEDIA_DIR = fileURLToPath(new URL('../../bench/origin/media/', import.meta.url))

/** The demo titles (bbb-test: MPEG-TS, bars: fMP4), loaded once. */
export async function demoTitle (name: string): Promise<Title> {
  const library = await loadMediaLibrary(MEDIA_DIR)
  const title = library.titles.get(name)
  if (title === undefined) throw new Error(`no demo title ${name}`)
  return title
}

/** A scripted origin serving `/live/<title>/...` from a LiveChannel on the given clock. */
export async function startLiveOrigin (t: Teardown, options: { now: () => number, startMs: number, title?: string, windowSegments?: number }): Promise<{ origin: ScriptedOrigin, channel: LiveChannel }> {
  const name = options.title ?? 'bbb-test'
  const channel = new LiveChannel({ title: await demoTitle(name), windowSegments: options.windowSegments ?? 6, startMs: options.startMs, now: options.now })
  const prefix = `/live/${name}/`
  const origin = await startScriptedOrigin(t, {
    now: options.now,
    fallback: (req): ScriptedResponse => {
      const path = req.path.split('?')[0] ?? ''
      if (!path.startsWith(prefix)) return { status: 404, body: 'not found\n' }
      const found = channel.lookup(path.slice(prefix.length))
      if (found.kind !== 'object') return { status: 404, headers: { 'content-type': 'text/plain' }, body: 'not found\n' }
      const object = found.object
      return { headers: { 'content-type': object.contentType, 'cache-control': object.cacheControl, etag: object.etag }, body: object.body() }
    },
  })
  return { origin, channel }
}

/** A keep-alive agent for many concurrent requests, destroyed at teardown. */
export function pollerAgent (t: Teardown, maxSockets: number): http.Agent {
  const agent = new http.Agent({ keepAlive: true, maxSockets })
  t.teardown(() => agent.destroy())
  return agent
}

/** GET with an agent; resolves with status, headers and body. */
export function get (url: string, agent: http.Agent | false = false, headers: Record<string, string> = {}): Promise<{ status: number, headers: http.IncomingHttpHeaders, body: Buffer }> {
  return new Promise((resolve, reject) => {
    http.get(url, { agent, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    }).on('error', reject)
  })
}

/** Waits (bounded) until `check` holds. */
export async function until (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
