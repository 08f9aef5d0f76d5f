/**
 * Servers under test run as child processes, so their CPU time can be read from
 * /proc/<pid>/stat without the load generator's mixed in. A child is ready when it
 * prints a JSON line `{"msg":"... listening","url":"http://..."}` on stdout (the
 * edge's pino line, and the same shape from bench/peers/*).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { open, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { httpGet } from './http-get.ts'

/** Repository root (the children run with it as their working directory). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url))
const STDERR_TAIL_BYTES = 4096

/** How to start a child server. */
export interface ChildServerOptions {
  /** Short name for error messages (`edge`, `bare`). */
  readonly label: string
  /** Node flags placed before the script (`--import tsx`, `--cpu-prof`, ...). */
  readonly nodeArgs?: readonly string[]
  readonly script: string
  readonly args?: readonly string[]
  readonly readyTimeoutMs?: number
  /** Added to the (cleaned) parent environment. */
  readonly env?: Readonly<Record<string, string>>
  /** Working directory (default {@link REPO_ROOT}). */
  readonly cwd?: string
  /**
   * Stdout goes to this file (created or truncated), as a service's log would, and the
   * listening line is looked for there: a server logging a line per request would
   * otherwise be measured through a pipe into the bench process. Default: a pipe.
   */
  readonly stdoutFile?: string
}

/** A running child server. */
export interface ChildServer {
  readonly label: string
  readonly pid: number
  readonly url: string
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. Resolves once it exited. */
  stop (graceMs?: number): Promise<void>
}

const running = new Set<ChildProcess>()
/** Children started in their own process group (external servers with workers). */
const groups = new Set<ChildProcess>()
let exitHookInstalled = false

/** Starts a child and resolves when it printed its listening line. */
export async function startChildServer (options: ChildServerOptions): Promise<ChildServer> {
  installExitHook()
  const out = options.stdoutFile === undefined ? undefined : await open(options.stdoutFile, 'w')
  let child: ChildProcess
  try {
    child = spawn(process.execPath, [...options.nodeArgs ?? [], options.script, ...options.args ?? []], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...cleanEnv(process.env), ...options.env },
      stdio: ['ignore', out?.fd ?? 'pipe', 'pipe'],
    })
  } finally {
    await out?.close() // the child has its own copy of the descriptor
  }
  running.add(child)
  child.once('exit', () => running.delete(child))
  let stderrTail = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES)
  })
  const readyTimeoutMs = options.readyTimeoutMs ?? 20_000
  const listening = options.stdoutFile === undefined ? waitForListening(child, readyTimeoutMs) : waitForListeningInFile(child, options.stdoutFile, readyTimeoutMs)
  const url = await listening.catch((err: unknown) => {
    child.kill('SIGKILL')
    throw new Error(`${options.label} did not start: ${(err as Error).message}\n${stderrTail}`)
  })
  if (child.pid === undefined) throw new Error(`${options.label} has no pid`)
  const pid = child.pid
  return {
    label: options.label,
    pid,
    url,
    stop: (graceMs = 15_000) => stopChild(child, graceMs),
  }
}

/** How to start the edge under test. */
export interface EdgeProcessOptions {
  readonly originUrl: string
  readonly cacheDir: string
  /** Checkout whose bin/streamedge.js runs (default: this one); lets two versions be compared. */
  readonly edgeRoot?: string
  readonly nodeArgs?: readonly string[]
  readonly id?: string
  /** Memory tier budget (`--edge.cache.memory.maxBytes`); the edge's default when absent. */
  readonly memoryMaxBytes?: number
  /** Shield base URLs (`--shield`): edge → shield → origin. */
  readonly shields?: readonly string[]
  /** Environment added to {@link APPLIANCE_ENV} (a benchmarking knob such as BENCH_PACER_DEFER_MS). */
  readonly env?: Readonly<Record<string, string>>
  /** `--log.access` (default false: no line per request, like the peers' configs). */
  readonly accessLog?: boolean
  /** Stdout to this file rather than a pipe into the bench (see {@link ChildServerOptions.stdoutFile}); wanted with `accessLog`. */
  readonly stdoutFile?: string
}

/**
 * How README tells operators to start an edge or shield on a cache appliance: glibc then gives
 * large freed buffers back to the kernel, so RSS follows the memory tier's budget instead of
 * keeping the heap grown while the cache filled (README: a one-off working-set A/B, not rerun by the bench).
 */
export const APPLIANCE_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072' }

/**
 * The V8 flags README tells operators to start an edge or shield with. After tens of seconds
 * without traffic V8's memory reducer shrinks the heap and the young generation, and the next
 * load then collects garbage more often, young and old, until V8 has grown them back: in the
 * bench an edge idles while the other targets take their windows. `npm run bench -- --only
 * hot-segment,ranges --peers nginx` measured the edge's 64 KiB range windows at 50,570-54,278
 * req/s without these flags and 57,375-64,121 with them (README). The young generation is held
 * at 8 MiB semi-spaces, half V8's default maximum: with a 16 MiB floor the working-set edge ended
 * at 238 MB of RSS (limit 217), with 8 at 212 (209 without any flag).
 */
export const APPLIANCE_NODE_ARGS: readonly string[] = ['--no-memory-reducer', '--min-semi-space-size=8', '--max-semi-space-size=8']

/** Starts `streamedge edge` through the real CLI, access log off unless asked, with {@link APPLIANCE_ENV} and {@link APPLIANCE_NODE_ARGS}. */
export function startEdgeProcess (opts: EdgeProcessOptions): Promise<ChildServer> {
  return startChildServer({
    label: 'edge',
    env: opts.env === undefined ? APPLIANCE_ENV : { ...APPLIANCE_ENV, ...opts.env },
    nodeArgs: [...APPLIANCE_NODE_ARGS, ...opts.nodeArgs ?? []],
    script: join(opts.edgeRoot ?? REPO_ROOT, 'bin/streamedge.js'),
    ...(opts.stdoutFile === undefined ? {} : { stdoutFile: opts.stdoutFile }),
    args: [
      'edge', '--origin', opts.originUrl, '--listen', '127.0.0.1:0', '--cache-dir', opts.cacheDir,
      '--edge.id', opts.id ?? 'bench-edge', '--log.access', String(opts.accessLog === true), '--log.level', 'info',
      ...opts.memoryMaxBytes === undefined ? [] : ['--edge.cache.memory.maxBytes', String(opts.memoryMaxBytes)],
      ...(opts.shields ?? []).flatMap((url) => ['--shield', url]),
    ],
  })
}

/** How to start a shield under test. */
export interface ShieldProcessOptions {
  readonly originUrl: string
  readonly cacheDir: string
  readonly edgeRoot?: string
  readonly memoryMaxBytes?: number
}

/** Starts `streamedge shield` through the real CLI (one origin), access log off, with {@link APPLIANCE_ENV} and {@link APPLIANCE_NODE_ARGS}. */
export function startShieldProcess (opts: ShieldProcessOptions): Promise<ChildServer> {
  return startChildServer({
    label: 'shield',
    env: APPLIANCE_ENV,
    nodeArgs: APPLIANCE_NODE_ARGS,
    script: join(opts.edgeRoot ?? REPO_ROOT, 'bin/streamedge.js'),
    args: [
      'shield', '--origin', opts.originUrl, '--listen', '127.0.0.1:0', '--cache-dir', opts.cacheDir,
      '--shield.id', 'bench-shield', '--log.access', 'false', '--log.level', 'info',
      ...opts.memoryMaxBytes === undefined ? [] : ['--shield.cache.memory.maxBytes', String(opts.memoryMaxBytes)],
    ],
  })
}

/** How to start a server that is not ours (nginx, varnishd). */
export interface ExternalServerOptions {
  readonly label: string
  /** Absolute path of the executable. */
  readonly command: string
  readonly args: readonly string[]
  /** Base URL it will listen on (the caller chose the port). */
  readonly url: string
  /** Path that answers 200 once it serves (without touching the origin). */
  readonly readyPath: string
  readonly readyTimeoutMs?: number
  /** Its own log files, quoted when it does not come up. */
  readonly logFiles?: readonly string[]
}

/**
 * Starts a foreground server in its own process group and resolves once `readyPath`
 * answers 200. Stopping sends SIGTERM to the process it started (nginx and varnishd stop
 * their workers themselves), then SIGKILL to the whole group, so no worker outlives the bench.
 */
export async function startExternalServer (options: ExternalServerOptions): Promise<ChildServer> {
  installExitHook()
  const child = spawn(options.command, [...options.args], {
    cwd: REPO_ROOT,
    env: cleanEnv(process.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  running.add(child)
  groups.add(child)
  child.once('exit', () => running.delete(child))
  let outputTail = ''
  const keep = (chunk: Buffer): void => { outputTail = (outputTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES) }
  child.stdout!.on('data', keep)
  child.stderr!.on('data', keep)
  const spawned = await new Promise<Error | undefined>((resolve) => {
    child.once('spawn', () => resolve(undefined))
    child.once('error', resolve)
  })
  if (spawned !== undefined || child.pid === undefined) throw new Error(`${options.label} did not start: ${spawned?.message ?? 'no pid'}`)
  const pid = child.pid
  const stop = async (graceMs = 15_000): Promise<void> => {
    await stopChild(child, graceMs)
    killGroup(pid)
    groups.delete(child)
  }
  try {
    await waitForReady(child, options.url + options.readyPath, options.readyTimeoutMs ?? 20_000)
  } catch (err) {
    await stop(2000)
    const logs = await Promise.all((options.logFiles ?? []).map(async (f) => (await readFile(f, 'utf8').catch(() => '')).slice(-STDERR_TAIL_BYTES)))
    throw new Error(`${options.label} did not start: ${(err as Error).message}\n${outputTail}\n${logs.join('\n')}`)
  }
  return { label: options.label, pid, url: options.url, stop }
}

async function waitForReady (child: ChildProcess, url: string, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  let last = 'no answer'
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode})`)
    try {
      const res = await httpGet(url, 1000)
      if (res.status === 200) return
      last = `status ${res.status}`
    } catch (err) {
      last = (err as Error).message
    }
    await sleep(50)
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms (${last})`)
}

function killGroup (pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    // the group is already gone
  }
}

/**
 * Parent env without STREAMEDGE_* settings and BENCH_* knobs (BENCH_PACER_DEFER_MS), so a
 * developer's shell cannot change what is measured; a scenario passes a knob explicitly.
 */
export function cleanEnv (env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('STREAMEDGE_') && !name.startsWith('BENCH_')) out[name] = value
  }
  return out
}

function waitForListening (child: ChildProcess, timeoutMs: number): Promise<string> {
  // The line listener stays for the child's lifetime: it keeps stdout drained, since a
  // full pipe would block the child's logger.
  const lines = createInterface({ input: child.stdout! })
  return new Promise((resolve, reject) => {
    let settled = false
    const settle = (err: Error | undefined, url?: string): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.off('exit', onExit)
      if (err === undefined) resolve(url!)
      else reject(err)
    }
    const timer = setTimeout(() => settle(new Error(`no listening line within ${timeoutMs} ms`)), timeoutMs)
    const onExit = (code: number | null, signal: string | null): void => settle(new Error(`exited (${code ?? signal})`))
    child.once('exit', onExit)
    lines.on('line', (line) => {
      if (settled) return
      const url = listeningUrl(line)
      if (url !== undefined) settle(undefined, url)
    })
  })
}

async function waitForListeningInFile (child: ChildProcess, file: string, timeoutMs: number): Promise<string> {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const url = (await readFile(file, 'utf8')).split('\n').map(listeningUrl).find((u) => u !== undefined)
    if (url !== undefined) return url
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited (${child.exitCode ?? child.signalCode})`)
    if (performance.now() > deadline) throw new Error(`no listening line in ${file} within ${timeoutMs} ms`)
    await sleep(50)
  }
}

/** The `url` of a `{"msg":"... listening","url":...}` JSON line, else undefined. */
export function listeningUrl (line: string): string | undefined {
  if (!line.startsWith('{')) return undefined
  try {
    const entry = JSON.parse(line) as { msg?: unknown, url?: unknown }
    if (typeof entry.msg === 'string' && entry.msg.endsWith('listening') && typeof entry.url === 'string') return entry.url
  } catch {
    // not JSON: some other output line
  }
  return undefined
}

async function stopChild (child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

// A crashed or interrupted bench must not leave servers behind.
function installExitHook (): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL')
    for (const child of groups) if (child.pid !== undefined) killGroup(child.pid)
  })
}

/** A long-lived helper process that answers one IPC message with one IPC message. */
export interface IpcWorker<Req, Res> {
  readonly pid: number
  /** Sends `request` and resolves with the reply; rejects if none comes within `timeoutMs` (the worker is then killed). */
  call (request: Req, timeoutMs: number): Promise<Res>
  stop (): Promise<void>
}

/**
 * Starts `node --import tsx script` with an IPC channel. Staying alive between calls
 * keeps its code warm (JIT-compiled), so round 1 is not measured with a cold client.
 */
export function startIpcWorker<Req, Res> (script: string): IpcWorker<Req, Res> {
  installExitHook()
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: REPO_ROOT,
    env: cleanEnv(process.env),
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  })
  running.add(child)
  child.once('exit', () => running.delete(child))
  let stderrTail = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderrTail = (stderrTail + chunk.toString('utf8')).slice(-STDERR_TAIL_BYTES) })
  if (child.pid === undefined) throw new Error(`${script} did not start`)
  return {
    pid: child.pid,
    call: (request, timeoutMs) => new Promise<Res>((resolve, reject) => {
      const fail = (why: string): void => {
        cleanup()
        child.kill('SIGKILL')
        reject(new Error(`${script}: ${why}\n${stderrTail}`))
      }
      const onMessage = (message: unknown): void => {
        cleanup()
        resolve(message as Res)
      }
      const onExit = (code: number | null, signal: string | null): void => fail(`exited (${code ?? signal})`)
      const timer = setTimeout(() => fail(`no reply within ${timeoutMs} ms`), timeoutMs)
      const cleanup = (): void => {
        clearTimeout(timer)
        child.off('message', onMessage)
        child.off('exit', onExit)
      }
      child.once('message', onMessage)
      child.once('exit', onExit)
      child.send(request as object)
    }),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.disconnect() // the worker exits when its channel closes
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  }
}
