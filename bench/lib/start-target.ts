/**
 * Starting our own targets: the edge (alone, or in front of a shield) through the real
 * CLI, and the bare node:http baseline. Each gets its own temp cache dir, removed on stop.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { benchTarget, type BenchTarget } from './bench-target.ts'
import { REPO_ROOT, startChildServer, startEdgeProcess, startShieldProcess, type ChildServer } from './child-server.ts'

/** How to start the edge target. */
export interface EdgeTargetOptions {
  readonly originUrl: string
  /** The edge's memory tier budget, passed explicitly so the RSS check knows it. */
  readonly memoryMaxBytes: number
  readonly edgeRoot?: string | undefined
  /** Node flags (e.g. profiling) for the edge process. */
  readonly nodeArgs?: readonly string[]
  /** Extra environment for the edge process (startEdgeTarget only). */
  readonly env?: Readonly<Record<string, string>>
  /**
   * startEdgeTarget only: the `edge-log` target, the same edge with its access log on
   * (`--log.access true`), its stdout going to a file as a service's log would.
   */
  readonly accessLog?: boolean
  /** startEdgeTarget only: the `edge-sendfile` target, the same edge with `server.sendfile` on (set as `true`, which edge trees from before the setting was an enum also read; the default, `remote`, copies to loopback clients). */
  readonly sendfile?: boolean
}

/** Starts `streamedge edge` as the `edge` target (access log off), with `accessLog` as `edge-log`, with `sendfile` as `edge-sendfile`. */
export async function startEdgeTarget (o: EdgeTargetOptions): Promise<BenchTarget> {
  const accessLog = o.accessLog === true
  const name = accessLog ? 'edge-log' : o.sendfile === true ? 'edge-sendfile' : 'edge'
  const dir = await mkdtemp(join(tmpdir(), `streamedge-bench-${name}-`))
  // The log lives beside the cache dir, not in it: that dir is the edge's alone.
  const logOptions = accessLog ? { cacheDir: join(dir, 'cache'), accessLog, stdoutFile: join(dir, 'stdout.jsonl') } : { cacheDir: dir }
  try {
    const env = o.sendfile === true ? { ...o.env, STREAMEDGE_EDGE_SERVER_SENDFILE: 'true' } : o.env
    const edge = await startEdgeProcess({ originUrl: o.originUrl, ...logOptions, memoryMaxBytes: o.memoryMaxBytes, ...rootAndArgs(o), ...(env === undefined ? {} : { env }) })
    return benchTarget(name, [edge], { hit: 'cache-status', memoryBudgetBytes: o.memoryMaxBytes, metrics: true, cleanup: () => rm(dir, { recursive: true, force: true }) })
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

/**
 * Starts a shield in front of the origin and an edge in front of the shield, as the
 * `edge-shield` target (its CPU is both processes'; its memory budget both tiers').
 */
export async function startEdgeShieldTarget (o: EdgeTargetOptions): Promise<BenchTarget> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-bench-edge-shield-'))
  const started: ChildServer[] = []
  try {
    const shield = await startShieldProcess({ originUrl: o.originUrl, cacheDir: join(dir, 'shield'), memoryMaxBytes: o.memoryMaxBytes, ...(o.edgeRoot === undefined ? {} : { edgeRoot: o.edgeRoot }) })
    started.push(shield)
    const edge = await startEdgeProcess({ originUrl: o.originUrl, cacheDir: join(dir, 'edge'), memoryMaxBytes: o.memoryMaxBytes, shields: [shield.url], ...rootAndArgs(o) })
    started.push(edge)
    return benchTarget('edge-shield', [edge, shield], { hit: 'cache-status', memoryBudgetBytes: 2 * o.memoryMaxBytes, metrics: true, cleanup: () => rm(dir, { recursive: true, force: true }) })
  } catch (err) {
    await Promise.all(started.map((s) => s.stop()))
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

function rootAndArgs (o: EdgeTargetOptions): { edgeRoot?: string, nodeArgs?: readonly string[] } {
  return { ...(o.edgeRoot === undefined ? {} : { edgeRoot: o.edgeRoot }), ...(o.nodeArgs === undefined ? {} : { nodeArgs: o.nodeArgs }) }
}

/** What the bare baseline sends. */
export interface BareTargetOptions {
  /** Synthetic body (name, bytes, ext), or `bodyFile` for a file's contents. */
  readonly name: string
  readonly bytes: number
  readonly ext: string
  readonly bodyFile?: string
  /** The edge's response status (default 200) and headers for the same object (replayableHeaders), so both send the same bytes. */
  readonly status?: number
  readonly headers: readonly string[]
  /** Answer through lib/http/fast-front.ts (target `bare-fast`) rather than node:http (`bare`). */
  readonly fast?: boolean
  readonly nodeArgs?: readonly string[]
}

/**
 * Starts bench/peers/bare-server.ts as the `bare` target: node:http sending one
 * preallocated body, with the edge's http.Server settings (edge.server.* defaults); with
 * `fast`, as `bare-fast`: the same bytes from the edge's fast path (lib/http/fast-front.ts).
 */
export async function startBareTarget (o: BareTargetOptions): Promise<BenchTarget> {
  const name = o.fast === true ? 'bare-fast' : 'bare'
  const server = await startChildServer({
    label: name,
    nodeArgs: [...o.nodeArgs ?? [], '--import', 'tsx'],
    script: join(REPO_ROOT, 'bench/peers/bare-server.ts'),
    args: [JSON.stringify({ name: o.name, bytes: o.bytes, ext: o.ext, ...(o.bodyFile === undefined ? {} : { bodyFile: o.bodyFile }), ...(o.status === undefined ? {} : { status: o.status }), headers: o.headers, ...(o.fast === true ? { fast: true } : {}), keepAliveTimeoutMs: 5000, headersTimeoutMs: 10000 })],
  })
  return benchTarget(name, [server], { hit: 'always' })
}
