/**
 * Active health probes: `GET <node url><path>` for every node that is not offline, all nodes
 * in parallel, one round per interval (a round never overlaps the previous one). A 2xx within
 * the timeout is a success; anything else is a failure with a reason. Verdicts go to the
 * health tracker, which applies the hysteresis.
 */
import type { NodeSpec } from './node-inventory.ts'

/** Options of {@link Prober}. */
export interface ProberOptions {
  /** The nodes to probe (read each round, so inventory reloads take effect). */
  readonly nodes: () => readonly NodeSpec[]
  /** Probe path, `/readyz` by default. */
  readonly path: string
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly onResult: (id: string, ok: boolean, detail?: string) => void
}

/** Probes nodes on a timer. */
export class Prober {
  readonly #o: ProberOptions
  #timer: NodeJS.Timeout | undefined
  #round: Promise<void> | undefined
  #stopped = false

  constructor (options: ProberOptions) {
    if (!Number.isSafeInteger(options.intervalMs) || options.intervalMs < 1) throw new TypeError(`Expected options.intervalMs to be a positive integer, got ${String(options.intervalMs)}`)
    if (!Number.isSafeInteger(options.timeoutMs) || options.timeoutMs < 1) throw new TypeError(`Expected options.timeoutMs to be a positive integer, got ${String(options.timeoutMs)}`)
    if (!options.path.startsWith('/')) throw new TypeError(`Expected options.path to start with /, got ${JSON.stringify(options.path)}`)
    this.#o = options
  }

  /** Starts the timer (the first round runs after one interval; call {@link probeAll} to run one now). */
  start (): void {
    if (this.#timer !== undefined || this.#stopped) return
    this.#timer = setInterval(() => {
      if (this.#round === undefined) void this.probeAll()
    }, this.#o.intervalMs)
    this.#timer.unref()
  }

  /** Probes every node once; resolves when all answered or timed out. */
  probeAll (): Promise<void> {
    if (this.#round !== undefined) return this.#round
    const nodes = this.#o.nodes().filter((n) => n.state !== 'offline')
    const round = Promise.all(nodes.map((n) => this.#probe(n))).then(() => undefined).finally(() => {
      this.#round = undefined
    })
    this.#round = round
    return round
  }

  /** Stops the timer and waits for a round in flight. */
  async stop (): Promise<void> {
    this.#stopped = true
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    await this.#round
  }

  async #probe (node: NodeSpec): Promise<void> {
    let ok = false
    let detail: string | undefined
    try {
      const res = await fetch(node.url + this.#o.path, { signal: AbortSignal.timeout(this.#o.timeoutMs), headers: { 'user-agent': 'streamedge-control-plane' } })
      await res.arrayBuffer()
      ok = res.status >= 200 && res.status < 300
      if (!ok) detail = `HTTP ${res.status}`
    } catch (err) {
      detail = describeFetchError(err)
    }
    if (!this.#stopped) this.#o.onResult(node.id, ok, detail)
  }
}

function describeFetchError (err: unknown): string {
  const e = err as { name?: string, message?: string, cause?: { code?: string, message?: string } }
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timeout'
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err)
}
