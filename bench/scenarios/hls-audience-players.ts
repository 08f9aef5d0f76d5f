/**
 * The player simulator of the hls-audience scenario: players that follow HLS playlists
 * like a real client and measure segment time-to-first-byte. It runs in a worker thread
 * (see {@link runPlayersInWorker}) so the players' own work does not queue behind the
 * cache nodes' event loop, which would show up as TTFB.
 */
import http from 'node:http'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { mulberry32, zipfSampler } from './offload.ts'

/** What shapes the audience (a subset of the scenario's settings). */
export interface AudienceShape {
  readonly players: number
  readonly livePercent: number
  readonly titles: number
  readonly segmentSeconds: number
  readonly speed: number
  readonly durationMs: number
  readonly rampMs: number
  readonly zipfExponent: number
  readonly seed: number
}

/** Renditions the bench origin offers, with how often players pick each. */
export const PLAYER_RENDITIONS = [{ name: 'hi', weight: 0.7 }, { name: 'lo', weight: 0.3 }] as const

/** Runs the whole audience against `edges` (spread round-robin) and resolves with the samples. */
export async function runPlayers (edges: readonly string[], shape: AudienceShape): Promise<PlayerSamples> {
  const samples: PlayerSamples = { segmentTtfbMs: [], segmentRequests: 0, segmentHits: 0, playlistRequests: 0, failed: 0, failures: {} }
  const agents = edges.map(() => new http.Agent({ keepAlive: true, maxSockets: 256 }))
  try {
    const random = mulberry32(shape.seed)
    const pickTitle = zipfSampler(shape.titles, shape.zipfExponent, random)
    const startedMs = performance.now()
    const deadlineMs = startedMs + shape.durationMs
    const players: Array<Promise<void>> = []
    for (let i = 0; i < shape.players; i++) {
      const edge = i % edges.length
      const client: Client = { base: edges[edge]!, agent: agents[edge]!, samples }
      const startMs = startedMs + (shape.rampMs * i) / shape.players
      const rendition = random() < PLAYER_RENDITIONS[0].weight ? PLAYER_RENDITIONS[0].name : PLAYER_RENDITIONS[1].name
      const live = random() * 100 < shape.livePercent
      players.push(live
        ? livePlayer(client, rendition, startMs, deadlineMs, shape)
        : vodPlayer(client, `/vod/t${pickTitle()}/`, rendition, startMs, deadlineMs, shape))
    }
    await Promise.all(players)
    return samples
  } finally {
    for (const agent of agents) agent.destroy()
  }
}

/** {@link runPlayers} in a worker thread (TypeScript loaded through tsx there too). */
export async function runPlayersInWorker (edges: readonly string[], shape: AudienceShape): Promise<PlayerSamples> {
  const url = new URL(import.meta.url).href
  const code = `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(url)}) })`
  const worker = new Worker(code, { eval: true, workerData: { kind: WORKER_KIND, edges, shape } })
  try {
    return await new Promise<PlayerSamples>((resolve, reject) => {
      worker.once('message', (message: { samples?: PlayerSamples, error?: string }) => {
        if (message.samples !== undefined) resolve(message.samples)
        else reject(new Error(message.error ?? 'player worker failed'))
      })
      worker.once('error', reject)
      worker.once('exit', (code) => reject(new Error(`player worker exited with ${code}`)))
    })
  } finally {
    await worker.terminate()
  }
}

const WORKER_KIND = 'streamedge-hls-audience-players'

/** What the players measured. */
export interface PlayerSamples {
  readonly segmentTtfbMs: number[]
  segmentRequests: number
  segmentHits: number
  playlistRequests: number
  failed: number
  /** Failed requests by status (0: the connection failed or the body was cut short). */
  readonly failures: Record<string, number>
}

interface Client {
  readonly base: string
  readonly agent: http.Agent
  readonly samples: PlayerSamples
}

async function vodPlayer (c: Client, title: string, rendition: string, startMs: number, deadlineMs: number, config: AudienceShape): Promise<void> {
  await sleepUntil(startMs)
  if (!(await playlist(c, `${title}master.m3u8`))) return
  const media = await playlist(c, `${title}${rendition}/index.m3u8`)
  if (media === undefined) return
  const segments = segmentUris(media)
  const intervalMs = (config.segmentSeconds * 1000) / config.speed
  // A short start-up buffer, then one segment per (scaled) segment duration, like a player at steady state.
  let due = performance.now()
  for (let i = 0; i < segments.length && performance.now() < deadlineMs; i++) {
    if (i >= 3) {
      due += intervalMs
      await sleepUntil(due)
    }
    await segment(c, `${title}${rendition}/${segments[i]!}`)
  }
}

async function livePlayer (c: Client, rendition: string, startMs: number, deadlineMs: number, config: AudienceShape): Promise<void> {
  await sleepUntil(startMs)
  if (!(await playlist(c, '/live/ch/master.m3u8'))) return
  let last = -1
  const pollMs = (config.segmentSeconds * 1000) / config.speed / 2
  while (performance.now() < deadlineMs) {
    const media = await playlist(c, `/live/ch/${rendition}/index.m3u8`)
    if (media === undefined) return
    const uris = segmentUris(media)
    const first = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(media)?.[1] ?? 0)
    // Join three segments from the live edge, then take every new one (skipping ahead when the window slid past).
    const from = last < 0 ? Math.max(first, first + uris.length - 3) : Math.max(first, last + 1)
    for (let msn = from; msn < first + uris.length; msn++) {
      await segment(c, `/live/ch/${rendition}/${uris[msn - first]!}`)
      last = msn
    }
    await sleep(pollMs)
  }
}

async function playlist (c: Client, path: string): Promise<string | undefined> {
  c.samples.playlistRequests++
  const got = await fetchOnce(c, path)
  if (got.status !== 200) {
    fail(c.samples, got.status, got.error)
    return undefined
  }
  return got.body.toString('utf8')
}

async function segment (c: Client, path: string): Promise<void> {
  c.samples.segmentRequests++
  const got = await fetchOnce(c, path)
  if (got.status !== 200) {
    fail(c.samples, got.status, got.error)
    return
  }
  c.samples.segmentTtfbMs.push(got.ttfbMs)
  if (/; hit/.test(got.cacheStatus)) c.samples.segmentHits++
}

function fail (samples: PlayerSamples, status: number, error: string | undefined): void {
  samples.failed++
  const key = status === 0 ? `error ${error ?? 'incomplete'}` : String(status)
  samples.failures[key] = (samples.failures[key] ?? 0) + 1
}

function fetchOnce (c: Client, path: string): Promise<{ status: number, body: Buffer, ttfbMs: number, cacheStatus: string, error?: string }> {
  return new Promise((resolve) => {
    const started = performance.now()
    const req = http.get(c.base + path, { agent: c.agent }, (res) => {
      const chunks: Buffer[] = []
      let ttfbMs = Number.NaN
      res.on('data', (chunk: Buffer) => {
        if (chunks.length === 0) ttfbMs = performance.now() - started
        chunks.push(chunk)
      })
      res.once('end', () => resolve({ status: res.complete ? res.statusCode ?? 0 : 0, body: Buffer.concat(chunks), ttfbMs, cacheStatus: String(res.headers['cache-status'] ?? '') }))
      res.once('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, body: Buffer.alloc(0), ttfbMs, cacheStatus: '', error: err.code ?? err.message }))
    })
    req.once('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, body: Buffer.alloc(0), ttfbMs: Number.NaN, cacheStatus: '', error: err.code ?? err.message }))
  })
}

function segmentUris (playlist: string): string[] {
  return playlist.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
}

function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))
}

async function sleepUntil (atMs: number): Promise<void> {
  const wait = atMs - performance.now()
  if (wait > 0) await sleep(wait)
}

const job = workerData as { kind?: string, edges?: string[], shape?: AudienceShape } | null
if (!isMainThread && job?.kind === WORKER_KIND && job.edges !== undefined && job.shape !== undefined) {
  runPlayers(job.edges, job.shape).then(
    (samples) => parentPort?.postMessage({ samples }),
    (err: unknown) => parentPort?.postMessage({ error: err instanceof Error ? err.stack ?? err.message : String(err) }),
  )
}
