/**
 * Cluster mode of the control plane (`controlPlane.workers` > 1): a node:cluster primary
 * forks one worker per slot; each worker runs the ordinary control plane on the shared
 * listening socket (node:cluster hands the primary's socket to all of them; round robin on
 * Linux), and the primary serves no HTTP itself. It relays what the workers must share:
 *
 * - heartbeats a worker accepted (signature checked there) go to every other worker, which
 *   records the same report at the same time; the latest per node is replayed to a new worker;
 * - the periodic probes run in slot 0 only (its replacement takes over), whose results go
 *   to the others (every worker probes once itself before it listens);
 * - /metrics on any worker asks the primary, which collects every serving worker's snapshot
 *   and merges them by each metric's aggregator (lib/metrics.ts ControlPlaneClusterMetrics);
 *   workers that send none within the deadline are left out and counted in
 *   `streamedge_cp_metrics_workers_missing`, so one hung worker does not fail the scrape.
 *
 * Messages (node:cluster IPC, JSON), each `{ type: 'streamedge-cp:<kind>', ... }`:
 *
 *   worker → primary                                 primary → worker
 *   hello                (handlers set: relay now)   heartbeat { report, receivedAtMs }
 *   ready { url }        (listening)                 probe { id, ok, detail? }
 *   failed { message, code? } (could not start)      snapshot-request { requestId }
 *   heartbeat { report, receivedAtMs }               metrics-response { requestId, text? | error? }
 *   probe { id, ok, detail? }                        stop   (close gracefully, then exit 0)
 *   metrics-request { requestId }
 *   snapshot { requestId, metrics? | error? }
 *
 * A worker that exits unexpectedly is restarted after a back-off (100 ms doubling to 5 s);
 * five crashes of one slot within 60 s end the cluster with exit code 1. A worker whose
 * primary is gone closes and exits.
 */
import cluster, { type Worker } from 'node:cluster'
import { CdnError, CODES, type ErrorCode } from '../lib/errors.ts'
import type { Logger } from '../lib/log.ts'
import { ControlPlaneClusterMetrics, type MetricsSnapshot } from '../lib/metrics.ts'
import type { NodeReport } from '../lib/protocol/node-report.ts'
import type { ControlPlanePeers } from './control-plane.ts'

/**
 * Environment variable that makes a forked process a control-plane worker, holding its slot
 * (0-based). Not `STREAMEDGE_*`: the config loader takes those for settings.
 */
const WORKER_SLOT_ENV = 'SE_CP_WORKER_SLOT'

const P = 'streamedge-cp:'

/** One IPC message between the primary and a worker (see the module comment). */
export type ClusterMessage =
  | { readonly type: 'streamedge-cp:hello' }
  | { readonly type: 'streamedge-cp:ready', readonly url: string }
  | { readonly type: 'streamedge-cp:failed', readonly message: string, readonly code?: string }
  | { readonly type: 'streamedge-cp:heartbeat', readonly report: NodeReport, readonly receivedAtMs: number }
  | { readonly type: 'streamedge-cp:probe', readonly id: string, readonly ok: boolean, readonly detail?: string }
  | { readonly type: 'streamedge-cp:metrics-request', readonly requestId: number }
  | { readonly type: 'streamedge-cp:metrics-response', readonly requestId: number, readonly text?: string, readonly error?: string }
  | { readonly type: 'streamedge-cp:snapshot-request', readonly requestId: number }
  | { readonly type: 'streamedge-cp:snapshot', readonly requestId: number, readonly metrics?: MetricsSnapshot, readonly error?: string }
  | { readonly type: 'streamedge-cp:stop' }

/** True for one of this module's messages (node:cluster and other libraries send their own). */
function isClusterMessage (message: unknown): message is ClusterMessage {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' &&
    (message as { type: string }).type.startsWith(P)
}

/** Sends one message to the other side; a closed channel drops it. */
type SendMessage = (message: ClusterMessage) => void

// ---- worker side -----------------------------------------------------------------------------

/** Options of {@link WorkerPeers}. */
export interface WorkerPeersOptions {
  /** This worker's slot; slot 0 runs the periodic probes. */
  readonly slot: number
  readonly send: SendMessage
  /** How long /metrics waits for the primary (ms). */
  readonly metricsTimeoutMs?: number
}

/**
 * A worker's side of the relay: the {@link ControlPlanePeers} the control plane is given.
 * Feed it the primary's messages with {@link WorkerPeers.receive}. It says hello (the primary
 * relays to it from then on, starting with the latest heartbeats) once both peer handlers are
 * registered, so no relayed event can come before its handler.
 */
export class WorkerPeers implements ControlPlanePeers {
  readonly prober: boolean
  readonly #send: SendMessage
  readonly #metricsTimeoutMs: number
  readonly #requests = new Map<number, { resolve: (text: string) => void, reject: (err: Error) => void, timer: NodeJS.Timeout }>()
  #onHeartbeat: ((report: NodeReport, receivedAtMs: number) => void) | undefined
  #onProbe: ((id: string, ok: boolean, detail: string | undefined) => void) | undefined
  #metrics: (() => Promise<MetricsSnapshot>) | undefined
  #onStop: (() => void) | undefined
  #nextRequestId = 0
  #greeted = false

  constructor (options: WorkerPeersOptions) {
    if (!Number.isSafeInteger(options.slot) || options.slot < 0) throw new TypeError(`Expected options.slot to be a non-negative integer, got ${String(options.slot)}`)
    this.prober = options.slot === 0
    this.#send = options.send
    this.#metricsTimeoutMs = options.metricsTimeoutMs ?? 10_000
  }

  shareHeartbeat (report: NodeReport, receivedAtMs: number): void {
    this.#send({ type: `${P}heartbeat`, report, receivedAtMs })
  }

  shareProbe (id: string, ok: boolean, detail: string | undefined): void {
    this.#send({ type: `${P}probe`, id, ok, ...(detail === undefined ? {} : { detail }) })
  }

  onPeerHeartbeat (handler: (report: NodeReport, receivedAtMs: number) => void): void {
    this.#onHeartbeat = handler
    this.#helloOnceReady()
  }

  onPeerProbe (handler: (id: string, ok: boolean, detail: string | undefined) => void): void {
    this.#onProbe = handler
    this.#helloOnceReady()
  }

  provideMetrics (source: () => Promise<MetricsSnapshot>): void {
    this.#metrics = source
  }

  /** Called once when the primary asks this worker to stop. */
  onStop (handler: () => void): void {
    this.#onStop = handler
  }

  renderMetrics (): Promise<string> {
    const requestId = this.#nextRequestId++
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#requests.delete(requestId)
        reject(new CdnError('CDN_ERR_INTERNAL', `The cluster primary sent no metrics within ${this.#metricsTimeoutMs} ms`))
      }, this.#metricsTimeoutMs)
      this.#requests.set(requestId, { resolve, reject, timer })
      this.#send({ type: `${P}metrics-request`, requestId })
    })
  }

  /** Handles one message from the primary (anything else is ignored). */
  receive (message: unknown): void {
    if (!isClusterMessage(message)) return
    switch (message.type) {
      // relayed only after hello, which waits for both handlers
      case 'streamedge-cp:heartbeat':
        this.#onHeartbeat?.(message.report, message.receivedAtMs)
        return
      case 'streamedge-cp:probe':
        this.#onProbe?.(message.id, message.ok, message.detail)
        return
      case 'streamedge-cp:snapshot-request':
        void this.#snapshot(message.requestId)
        return
      case 'streamedge-cp:metrics-response': {
        const request = this.#requests.get(message.requestId)
        if (request === undefined) return
        this.#requests.delete(message.requestId)
        clearTimeout(request.timer)
        if (message.text !== undefined) request.resolve(message.text)
        else request.reject(new CdnError('CDN_ERR_INTERNAL', `Cluster metrics failed: ${message.error ?? 'no answer'}`))
        return
      }
      case 'streamedge-cp:stop': {
        const stop = this.#onStop
        this.#onStop = undefined
        stop?.()
      }
    }
  }

  async #snapshot (requestId: number): Promise<void> {
    try {
      if (this.#metrics === undefined) throw new Error('this worker has not started')
      this.#send({ type: `${P}snapshot`, requestId, metrics: await this.#metrics() })
    } catch (err) {
      this.#send({ type: `${P}snapshot`, requestId, error: err instanceof Error ? err.message : String(err) })
    }
  }

  /** Tells the primary relays may start (it replays the latest heartbeats), once both handlers exist. */
  #helloOnceReady (): void {
    if (this.#greeted || this.#onHeartbeat === undefined || this.#onProbe === undefined) return
    this.#greeted = true
    this.#send({ type: `${P}hello` })
  }
}

// ---- primary side: the relay ------------------------------------------------------------------

/** Options of {@link ClusterHub}. */
export interface ClusterHubOptions {
  /** The cluster's own metrics and the merge of the workers'. */
  readonly metrics: ControlPlaneClusterMetrics
  /** How long a metrics collection waits for the workers (ms); the ones still silent then are left out. */
  readonly collectTimeoutMs?: number
}

interface Member {
  readonly slot: number
  readonly send: SendMessage
  greeted: boolean
  ready: boolean
}

interface Collection {
  readonly waiting: Set<number>
  readonly parts: MetricsSnapshot[]
  /** Workers that answered with an error instead of a snapshot. */
  failed: number
  readonly timer: NodeJS.Timeout
  readonly finish: () => void
}

/**
 * The primary's relay, independent of node:cluster (tests drive it with plain functions):
 * members join with {@link ClusterHub.add}, their messages come in through
 * {@link ClusterHub.receive}, and a member that exits leaves with {@link ClusterHub.remove}.
 */
export class ClusterHub {
  readonly #metrics: ControlPlaneClusterMetrics
  readonly #collectTimeoutMs: number
  readonly #members = new Map<number, Member>()
  /** The latest accepted heartbeat of each node, for workers that start later. */
  readonly #heartbeats = new Map<string, { readonly report: NodeReport, readonly receivedAtMs: number }>()
  readonly #collections = new Map<number, Collection>()
  #nextCollection = 0

  constructor (options: ClusterHubOptions) {
    this.#metrics = options.metrics
    this.#collectTimeoutMs = options.collectTimeoutMs ?? 5000
  }

  /** Workers listening (the `streamedge_cp_workers` gauge). */
  get readyCount (): number {
    let n = 0
    for (const m of this.#members.values()) if (m.ready) n++
    return n
  }

  /** A new worker (`id` is unique per process started). */
  add (id: number, slot: number, send: SendMessage): void {
    this.#members.set(id, { slot, send, greeted: false, ready: false })
  }

  /** A worker that exited: it is no longer relayed to, and collections stop waiting for it. */
  remove (id: number): void {
    this.#members.delete(id)
    for (const c of this.#collections.values()) {
      c.waiting.delete(id)
      if (c.waiting.size === 0) c.finish()
    }
  }

  /** Handles one message from worker `id`; returns it for the caller's own bookkeeping (ready, failed). */
  receive (id: number, message: unknown): ClusterMessage | undefined {
    if (!isClusterMessage(message)) return undefined
    const member = this.#members.get(id)
    if (member === undefined) return undefined
    switch (message.type) {
      case 'streamedge-cp:hello':
        member.greeted = true
        for (const h of this.#heartbeats.values()) member.send({ type: `${P}heartbeat`, report: h.report, receivedAtMs: h.receivedAtMs })
        break
      case 'streamedge-cp:ready':
        member.ready = true
        break
      case 'streamedge-cp:heartbeat': {
        const latest = this.#heartbeats.get(message.report.id)
        if (latest === undefined || latest.receivedAtMs <= message.receivedAtMs) this.#heartbeats.set(message.report.id, { report: message.report, receivedAtMs: message.receivedAtMs })
        this.#relay(id, message)
        break
      }
      case 'streamedge-cp:probe':
        this.#relay(id, message)
        break
      case 'streamedge-cp:metrics-request':
        void this.#collect().then(
          (text) => member.send({ type: `${P}metrics-response`, requestId: message.requestId, text }),
          (err: unknown) => member.send({ type: `${P}metrics-response`, requestId: message.requestId, error: err instanceof Error ? err.message : String(err) }))
        break
      case 'streamedge-cp:snapshot': {
        const c = this.#collections.get(message.requestId)
        if (c === undefined || !c.waiting.has(id)) break
        c.waiting.delete(id)
        if (message.metrics === undefined) c.failed++
        else c.parts.push(message.metrics)
        if (c.waiting.size === 0) c.finish()
        break
      }
    }
    return message
  }

  /** Whether worker `id` said hello (it handles messages from then on). */
  greeted (id: number): boolean {
    return this.#members.get(id)?.greeted === true
  }

  #relay (from: number, message: ClusterMessage): void {
    for (const [id, m] of this.#members) if (id !== from && m.greeted) m.send(message)
  }

  /**
   * The snapshots of the serving workers that answer within the deadline, merged, plus the
   * count of those that did not (a hung worker leaves a gap instead of failing the scrape).
   */
  #collect (): Promise<string> {
    const requestId = this.#nextCollection++
    const waiting = new Set<number>()
    for (const [id, m] of this.#members) if (m.ready) waiting.add(id)
    return new Promise<string>((resolve, reject) => {
      const finish = (): void => {
        const c = this.#collections.get(requestId)
        if (c === undefined) return
        this.#collections.delete(requestId)
        clearTimeout(c.timer)
        this.#metrics.render(c.parts, c.waiting.size + c.failed).then(resolve, reject)
      }
      const timer = setTimeout(finish, this.#collectTimeoutMs)
      this.#collections.set(requestId, { waiting, parts: [], failed: 0, timer, finish })
      if (waiting.size === 0) {
        finish()
        return
      }
      const request: ClusterMessage = { type: `${P}snapshot-request`, requestId }
      for (const id of waiting) this.#members.get(id)?.send(request)
    })
  }
}

// ---- primary side: the processes --------------------------------------------------------------

/** Options of {@link startControlPlaneCluster}. */
export interface ControlPlaneClusterOptions {
  /** Worker processes, 2 or more. */
  readonly workers: number
  /** Control-plane id (the `node` label of the cluster's metrics). */
  readonly id: string
  readonly logger: Logger
}

/** A running cluster, as the primary sees it. */
export interface RunningControlPlaneCluster {
  readonly url: string
  /** Process ids of the workers now running, by slot. */
  workerPids (): Array<{ readonly worker: number, readonly pid: number | undefined }>
  /** Stops every worker gracefully (SIGKILL after {@link STOP_TIMEOUT_MS}), then resolves. */
  close (): Promise<void>
}

interface Slot {
  readonly index: number
  worker: Worker | undefined
  startedAtMs: number
  backoffMs: number
  crashes: number[]
  restartTimer: NodeJS.Timeout | undefined
  /** What the worker reported when it could not start. */
  failure: FailedMessage | undefined
}

type FailedMessage = Extract<ClusterMessage, { readonly type: 'streamedge-cp:failed' }>

/** Restart policy: 100 ms doubling to 5 s; five crashes of a slot within 60 s end the cluster. */
const RESTART = { initialDelayMs: 100, maxDelayMs: 5000, maxCrashes: 5, windowMs: 60_000 } as const

/** How long workers have to close before they are killed (ms). */
const STOP_TIMEOUT_MS = 10_000

/**
 * Makes this process a node:cluster primary: forks `workers` copies of this command (same
 * arguments and node flags), each with `SE_CP_WORKER_SLOT` set, relays between them,
 * restarts those that crash, and resolves once every worker listens, after printing the one
 * "control plane listening" line. Rejects (after stopping the others) if a worker cannot start.
 */
export async function startControlPlaneCluster (options: ControlPlaneClusterOptions): Promise<RunningControlPlaneCluster> {
  if (!Number.isSafeInteger(options.workers) || options.workers < 2) throw new TypeError(`Expected options.workers to be an integer of at least 2, got ${String(options.workers)}`)
  if (!cluster.isPrimary) throw new TypeError('Expected startControlPlaneCluster to run in a cluster primary, got a worker')
  const logger = options.logger
  const hub: ClusterHub = new ClusterHub({ metrics: new ControlPlaneClusterMetrics({ node: options.id, workers: () => hub.readyCount }) })
  const slots: Slot[] = Array.from({ length: options.workers }, (_, index) => ({
    index, worker: undefined, startedAtMs: 0, backoffMs: RESTART.initialDelayMs, crashes: [], restartTimer: undefined, failure: undefined,
  }))
  let phase: 'starting' | 'running' | 'stopping' = 'starting'
  let url: string | undefined
  let startup: { resolve: () => void, reject: (err: Error) => void } | undefined
  const stopped: Array<() => void> = []

  const onMessage = (slot: Slot, worker: Worker, message: unknown): void => {
    if (isClusterMessage(message) && message.type === 'streamedge-cp:failed') slot.failure = message
    const m = hub.receive(worker.id, message)
    if (m?.type === 'streamedge-cp:ready') {
      url ??= m.url
      if (phase === 'starting' && hub.readyCount === slots.length) startup?.resolve()
    }
  }
  const live = (): Worker[] => slots.flatMap((s) => s.worker === undefined ? [] : [s.worker])
  const fork = (slot: Slot): void => {
    slot.restartTimer = undefined
    slot.failure = undefined
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.index) })
    slot.worker = worker
    slot.startedAtMs = Date.now()
    hub.add(worker.id, slot.index, (message) => {
      if (worker.isConnected()) worker.send(message, undefined, () => {}) // a worker exiting meanwhile: nothing to do
    })
    logger.info({ worker: slot.index, pid: worker.process.pid }, 'worker started')
    // listeners of this worker, holding its slot: its last message (failed) may come after 'exit'
    worker.on('message', (message: unknown) => onMessage(slot, worker, message))
    worker.on('exit', (code: number | null, signal: string | null) => onExit(slot, worker, code, signal))
  }
  // the exit may be seen before the worker's last message (failed) is read: wait for its channel to close
  const afterLastMessage = (worker: Worker, fn: () => void): void => {
    if (worker.isConnected()) worker.once('disconnect', fn)
    else fn()
  }
  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null): void => {
    hub.remove(worker.id)
    if (slot.worker === worker) slot.worker = undefined
    const fields = { worker: slot.index, pid: worker.process.pid, code, signal }
    if (phase === 'stopping') {
      logger.info(fields, 'worker exited')
      if (live().length === 0) for (const done of stopped.splice(0)) done()
      return
    }
    if (phase === 'starting') {
      afterLastMessage(worker, () => {
        const failure = slot.failure
        if (failure !== undefined) {
          const known = failure.code !== undefined && failure.code in CODES ? failure.code as ErrorCode : 'CDN_ERR_INTERNAL'
          startup?.reject(new CdnError(known, failure.message))
        } else {
          startup?.reject(new CdnError('CDN_ERR_INTERNAL', `Control-plane worker ${slot.index} exited before listening (code ${String(code)}, signal ${String(signal)})`))
        }
      })
      return
    }
    afterLastMessage(worker, () => {
      if (phase !== 'running') return // stopping meanwhile: this worker is already gone from live()
      // a restarted worker that could not start says why (the new fork clears it)
      restartLater(slot, slot.failure === undefined ? fields : { ...fields, reason: slot.failure.message })
    })
  }
  const restartLater = (slot: Slot, fields: Record<string, unknown>): void => {
    const now = Date.now()
    slot.crashes = slot.crashes.filter((at) => now - at < RESTART.windowMs)
    slot.crashes.push(now)
    if (slot.crashes.length >= RESTART.maxCrashes) {
      logger.error({ ...fields, crashes: slot.crashes.length, windowMs: RESTART.windowMs }, `worker ${slot.index} exited ${slot.crashes.length} times within ${RESTART.windowMs} ms: giving up`)
      void running.close().finally(() => {
        logger.flush()
        process.exit(1)
      })
      return
    }
    if (now - slot.startedAtMs >= RESTART.windowMs) slot.backoffMs = RESTART.initialDelayMs // it had been up a while: start over
    const delayMs = slot.backoffMs
    slot.backoffMs = Math.min(RESTART.maxDelayMs, slot.backoffMs * 2)
    logger.warn({ ...fields, restartInMs: delayMs }, 'worker exited unexpectedly: restarting it')
    slot.restartTimer = setTimeout(() => { if (phase === 'running') fork(slot) }, delayMs)
  }

  const running: RunningControlPlaneCluster = {
    get url () { return url ?? '' },
    workerPids: () => slots.map((s) => ({ worker: s.index, pid: s.worker?.process.pid })),
    async close () {
      if (phase === 'stopping') {
        if (live().length > 0) await new Promise<void>((resolve) => stopped.push(resolve))
        return
      }
      phase = 'stopping'
      for (const s of slots) clearTimeout(s.restartTimer)
      const workers = live()
      if (workers.length > 0) {
        logger.info({ workers: workers.length }, 'stopping workers')
        const allExited = new Promise<void>((resolve) => stopped.push(resolve))
        // a worker that has not said hello yet may not listen for messages: a signal stops it
        for (const w of workers) {
          if (hub.greeted(w.id)) w.send({ type: `${P}stop` }, undefined, () => {})
          else w.process.kill('SIGTERM')
        }
        const timer = setTimeout(() => {
          for (const w of live()) {
            logger.warn({ pid: w.process.pid }, 'worker did not stop in time: killing it')
            w.process.kill('SIGKILL')
          }
        }, STOP_TIMEOUT_MS)
        await allExited
        clearTimeout(timer)
      }
      logger.info('stopped')
      logger.flush()
    },
  }

  try {
    await new Promise<void>((resolve, reject) => {
      startup = { resolve, reject }
      for (const slot of slots) fork(slot)
    })
  } catch (err) {
    await running.close()
    throw err
  } finally {
    startup = undefined
  }
  phase = 'running'
  logger.info({ url, workers: running.workerPids() }, 'control plane listening')
  return running
}

// ---- worker side: the process -----------------------------------------------------------------

/** True in a process a control-plane cluster primary forked as one of its workers. */
export function isControlPlaneWorker (): boolean {
  return cluster.isWorker && process.env[WORKER_SLOT_ENV] !== undefined
}

/** A worker's membership of its cluster (see {@link joinControlPlaneCluster}). */
export interface ClusterMembership {
  readonly slot: number
  readonly peers: WorkerPeers
  /** Tells the primary this worker listens. */
  ready (url: string): void
  /** Reports a start-up failure to the primary (which reports it once) and exits with code 1. */
  failed (err: unknown): Promise<never>
  /** Runs `close` and exits 0 when the primary asks this worker to stop or is gone. */
  closeWith (close: () => Promise<void>): void
}

/** Joins the cluster this worker process belongs to: relays start flowing. */
export function joinControlPlaneCluster (): ClusterMembership {
  const slot = Number(process.env[WORKER_SLOT_ENV])
  const send: SendMessage = (message) => {
    if (process.connected) process.send?.(message, undefined, {}, () => {}) // primary gone: the 'disconnect' handler exits
  }
  const peers = new WorkerPeers({ slot, send })
  let close: (() => Promise<void>) | undefined
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    if (close === undefined) process.exit(0) // still starting: nothing listens yet
    close().then(() => process.exit(0), (err: unknown) => {
      process.stderr.write(`control-plane worker ${slot}: error while closing: ${String(err)}\n`)
      process.exit(1)
    })
  }
  peers.onStop(stop)
  process.once('disconnect', stop)
  process.on('message', (message) => peers.receive(message)) // hello follows once the control plane set its peer handlers
  return {
    slot,
    peers,
    ready: (url) => send({ type: `${P}ready`, url }),
    failed: async (err) => {
      const message = err instanceof Error ? err.message : String(err)
      const code = typeof (err as { code?: unknown } | null)?.code === 'string' ? (err as { code: string }).code : undefined
      await new Promise<void>((resolve) => {
        if (!process.connected) return resolve()
        process.send?.({ type: `${P}failed`, message, ...(code === undefined ? {} : { code }) }, undefined, {}, () => resolve())
      })
      process.exit(1)
    },
    closeWith: (fn) => {
      close = fn
    },
  }
}
