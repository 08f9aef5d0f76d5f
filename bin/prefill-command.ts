/**
 * `streamedge prefill --node URL --token T TITLE...`: asks a node to pre-position titles and
 * follows the job to its end, with a progress bar on a terminal (a line every few seconds
 * otherwise). The final job status goes to stdout as JSON; the exit code is 0 when every
 * segment is cached, 1 when anything failed.
 */
import type { PrefillArgs } from '../config/cli.ts'
import { cancelPrefillJob, getPrefillJob, startPrefill, type NodeAdmin } from '../lib/protocol/prefill-client.ts'
import { parsePrefillRequest, type PrefillJobStatus, type PrefillRequest } from '../lib/protocol/prefill.ts'

/** What the command line gave. */
export interface PrefillCommandOptions {
  readonly node: string
  readonly token: string
  readonly request: PrefillRequest
  /** Print the job and return at once instead of following it. */
  readonly detach: boolean
  readonly timeoutMs?: number
}

/** Where the command writes, and how it waits (injectable for tests). */
export interface PrefillCommandIo {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  /** stderr is a terminal: draw a progress bar. */
  readonly isTty: boolean
  readonly pollMs?: number
  /** Aborts the wait (Ctrl-C): the job is cancelled on the node. */
  readonly signal?: AbortSignal
}

const BAR_WIDTH = 30
/** Without a terminal, one progress line this often. */
const LINE_EVERY_MS = 5000

/** The CLI handler: validates the parsed command line as a request (exit 2 when invalid), then runs it. */
export async function prefillFromCli (args: PrefillArgs, io: PrefillCommandIo): Promise<number> {
  const parsed = parsePrefillRequest({
    titles: args.titles,
    ...(args.renditions === undefined ? {} : { renditions: args.renditions }),
    ...(args.maxBandwidth === undefined ? {} : { maxBandwidth: args.maxBandwidth }),
    ...(args.rate === undefined ? {} : { bytesPerSecond: args.rate }),
    ...(args.concurrency === undefined ? {} : { concurrency: args.concurrency }),
    ...(args.window === undefined ? {} : { window: args.window }),
  })
  if (!parsed.ok) {
    io.stderr(`Invalid prefill request: ${parsed.error} (see "streamedge prefill --help")\n`)
    return 2
  }
  return await runPrefillCommand({ node: args.node, token: args.token, request: parsed.value, detach: args.detach }, io)
}

/** Runs the command; resolves to the exit code. */
export async function runPrefillCommand (options: PrefillCommandOptions, io: PrefillCommandIo): Promise<number> {
  const node: NodeAdmin = { url: options.node, token: options.token, timeoutMs: options.timeoutMs ?? 10_000 }
  const started = await startPrefill(node, options.request)
  if (!started.ok) {
    io.stderr(`prefill refused by ${options.node}: ${started.error}\n`)
    return 1
  }
  if (options.detach) {
    io.stdout(`${JSON.stringify(started.value)}\n`)
    return 0
  }
  const pollMs = io.pollMs ?? 500
  let status = started.value
  let lastLineMs = 0
  while (status.finishedAtMs === undefined) {
    if (io.signal?.aborted === true) {
      const cancelled = await cancelPrefillJob(node, status.id)
      if (io.isTty) io.stderr('\n')
      io.stderr(`cancelled job ${status.id}${cancelled.ok ? '' : ` (cancel failed: ${cancelled.error})`}\n`)
      return 130
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs))
    const polled = await getPrefillJob(node, status.id)
    if (!polled.ok) {
      io.stderr(`${io.isTty ? '\n' : ''}lost track of job ${status.id}: ${polled.error}\n`)
      return 1
    }
    status = polled.value
    const nowMs = Date.now()
    if (io.isTty) io.stderr(`\r${progressLine(status, nowMs)}\u001b[K`)
    else if (nowMs - lastLineMs >= LINE_EVERY_MS) {
      io.stderr(`${progressLine(status, nowMs)}\n`)
      lastLineMs = nowMs
    }
  }
  if (io.isTty) io.stderr('\n')
  io.stderr(`${summary(status)}\n`)
  for (const error of status.errors) io.stderr(`  ${error}\n`)
  io.stdout(`${JSON.stringify(status)}\n`)
  return status.state === 'done' && status.segmentsFailed === 0 && status.errors.length === 0 ? 0 : 1
}

/** One progress line: bar, percentage, segments, bytes and rate. */
export function progressLine (status: PrefillJobStatus, nowMs: number): string {
  if (status.state === 'waiting') return `waiting for the fill window (${status.segmentsDone}/${status.segmentsTotal} segments done)`
  const fraction = status.segmentsTotal === 0 ? 0 : status.segmentsDone / status.segmentsTotal
  const filled = Math.round(fraction * BAR_WIDTH)
  const seconds = Math.max(0.001, ((status.finishedAtMs ?? nowMs) - status.createdAtMs) / 1000)
  return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ` +
    `${status.segmentsDone}/${status.segmentsTotal} segments, ${formatBytes(status.bytes)} at ${formatBytes(status.bytes / seconds)}/s` +
    `${status.segmentsCached > 0 ? `, ${status.segmentsCached} already cached` : ''}${status.segmentsFailed > 0 ? `, ${status.segmentsFailed} failed` : ''}`
}

function summary (status: PrefillJobStatus): string {
  return `job ${status.id} ${status.state}: ${status.segmentsFilled} filled, ${status.segmentsCached} already cached, ${status.segmentsFailed} failed ` +
    `of ${status.segmentsTotal} segments in ${status.playlists} playlists, ${formatBytes(status.bytes)} fetched`
}

function formatBytes (bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`
}
