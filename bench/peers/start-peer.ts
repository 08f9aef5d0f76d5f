/**
 * The third-party caches the suite compares the edge with, each started from the config
 * files in this folder on 127.0.0.1 with a free port and its own temp dir (removed on stop):
 *
 * - `nginx`: proxy_cache (nginx-proxy-cache.conf)
 * - `nginx-slice`: proxy_cache per 1 MiB slice (nginx-slice.conf; needs --with-http_slice_module)
 * - `varnish`: malloc storage, streaming (varnish.vcl)
 *
 * A peer whose binary is missing is reported absent by {@link detectPeers}, not started.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { benchTarget, PEER_NAMES, type BenchTarget, type PeerAvailability } from '../lib/bench-target.ts'

export type { PeerAvailability }
import { startExternalServer } from '../lib/child-server.ts'
import { commandOutput, findExecutable, versionLine } from '../lib/executables.ts'
import { freePort } from '../lib/free-port.ts'
import { renderTemplate } from '../lib/render-template.ts'

const PEERS_DIR = fileURLToPath(new URL('./', import.meta.url))
/** The edge's edge.cache.disk.maxBytes default, for nginx's proxy_cache_path max_size. */
const DEFAULT_DISK_MAX_BYTES = 10 * 2 ** 30
/** The edge's edge.cache.memory.maxBytes default, for Varnish's malloc storage. */
const DEFAULT_MEMORY_MAX_BYTES = 256 * 2 ** 20

/** Looks for nginx (and its slice module) and varnishd. */
export function detectPeers (): PeerAvailability[] {
  const nginx = findExecutable('nginx')
  const varnishd = findExecutable('varnishd')
  const nginxVersion = nginx === undefined ? undefined : versionLine(nginx, ['-v'])
  const hasSlice = nginx !== undefined && (commandOutput(nginx, ['-V']) ?? '').includes('--with-http_slice_module')
  const varnishVersion = varnishd === undefined ? undefined : versionLine(varnishd, ['-V'])
  const missing = (what: string): string => `${what} not found on PATH or in /usr/sbin (see bench/README.md)`
  return PEER_NAMES.map((name): PeerAvailability => {
    if (name === 'varnish') {
      return { name, available: varnishd !== undefined, command: varnishd, version: varnishVersion, reason: varnishd === undefined ? missing('varnishd') : undefined }
    }
    if (nginx === undefined) return { name, available: false, command: undefined, version: undefined, reason: missing('nginx') }
    if (name === 'nginx-slice' && !hasSlice) {
      return { name, available: false, command: nginx, version: nginxVersion, reason: 'nginx built without --with-http_slice_module (Debian: nginx-full or nginx-extras)' }
    }
    return { name, available: true, command: nginx, version: nginxVersion, reason: undefined }
  })
}

/** How to start a peer. */
export interface PeerOptions {
  readonly originUrl: string
  /** Varnish's malloc size: the edge's memory tier budget (default 256 MiB). */
  readonly memoryMaxBytes?: number
  /** nginx's proxy_cache_path max_size: the edge's disk budget (default 10 GiB). */
  readonly diskMaxBytes?: number
}

/** Starts an available peer (see {@link detectPeers}) as a target. */
export async function startPeer (peer: PeerAvailability, options: PeerOptions): Promise<BenchTarget> {
  if (!peer.available || peer.command === undefined) throw new TypeError(`Expected an available peer, got ${peer.name} (${peer.reason ?? 'absent'})`)
  return peer.name === 'varnish' ? await startVarnish(peer.command, options) : await startNginx(peer.command, peer.name, options)
}

/** Values of the nginx templates' placeholders. */
export interface NginxConfigValues {
  readonly dir: string
  readonly listen: string
  /** host:port of the origin. */
  readonly origin: string
  readonly diskMaxBytes: number
  readonly workers: number
  /** The user the workers run as; only rendered for root, since nginx warns about `user` otherwise. */
  readonly user: string | undefined
}

/** The nginx config of a variant with its placeholders filled in. */
export function renderNginxConfig (template: string, v: NginxConfigValues): string {
  return renderTemplate(template, {
    // As root, nginx would switch its workers to `nobody`, which cannot write to our 0700 temp dir.
    userDirective: v.user === undefined ? '' : `user ${v.user};`,
    dir: v.dir,
    listen: v.listen,
    origin: v.origin,
    diskMaxBytes: v.diskMaxBytes,
    workers: v.workers,
  })
}

async function startNginx (command: string, name: 'nginx' | 'nginx-slice', o: PeerOptions): Promise<BenchTarget> {
  const dir = await mkdtemp(join(tmpdir(), `streamedge-bench-${name}-`))
  try {
    const port = await freePort()
    const template = await readFile(join(PEERS_DIR, name === 'nginx' ? 'nginx-proxy-cache.conf' : 'nginx-slice.conf'), 'utf8')
    const config = renderNginxConfig(template, {
      dir,
      listen: `127.0.0.1:${port}`,
      origin: new URL(o.originUrl).host,
      diskMaxBytes: o.diskMaxBytes ?? DEFAULT_DISK_MAX_BYTES,
      workers: 1,
      user: process.getuid?.() === 0 ? userInfo().username : undefined,
    })
    const configFile = join(dir, 'nginx.conf')
    await writeFile(configFile, config)
    const server = await startExternalServer({
      label: name,
      command,
      args: ['-p', dir, '-e', join(dir, 'error.log'), '-c', configFile],
      url: `http://127.0.0.1:${port}`,
      readyPath: '/_bench/ready',
      logFiles: [join(dir, 'error.log')],
    })
    return benchTarget(name, [server], { hit: 'x-bench-cache', cleanup: () => rm(dir, { recursive: true, force: true }) })
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}

/** Values of the VCL template's placeholders. */
export interface VarnishVclValues {
  readonly originHost: string
  readonly originPort: number
}

/** The VCL with its placeholders filled in. */
export function renderVarnishVcl (template: string, v: VarnishVclValues): string {
  return renderTemplate(template, { originHost: v.originHost, originPort: v.originPort })
}

/** varnishd's storage size syntax: whole MiB as `<n>M`, else KiB rounded up as `<n>k`. */
export function varnishSize (bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new TypeError(`Expected bytes to be a positive integer, got ${String(bytes)}`)
  return bytes % 2 ** 20 === 0 ? `${bytes / 2 ** 20}M` : `${Math.ceil(bytes / 1024)}k`
}

async function startVarnish (command: string, o: PeerOptions): Promise<BenchTarget> {
  const dir = await mkdtemp(join(tmpdir(), 'streamedge-bench-varnish-'))
  try {
    // varnishd drops root to its own users, which must read the VCL and create the work dir here.
    await chmod(dir, 0o755)
    const port = await freePort()
    const origin = new URL(o.originUrl)
    const vcl = renderVarnishVcl(await readFile(join(PEERS_DIR, 'varnish.vcl'), 'utf8'), { originHost: origin.hostname, originPort: Number(origin.port) })
    const vclFile = join(dir, 'bench.vcl')
    await writeFile(vclFile, vcl)
    const memory = o.memoryMaxBytes ?? DEFAULT_MEMORY_MAX_BYTES
    const server = await startExternalServer({
      label: 'varnish',
      command,
      args: [
        '-F', '-n', join(dir, 'work'), '-a', `127.0.0.1:${port}`, '-f', vclFile, '-s', `malloc,${varnishSize(memory)}`, '-T', 'none',
        // Client keep-alive idle time as on the edge (edge.server.keepAliveTimeoutMs).
        '-p', 'timeout_idle=5',
      ],
      url: `http://127.0.0.1:${port}`,
      readyPath: '/_bench/ready',
      readyTimeoutMs: 30_000, // compiling the VCL takes a few seconds on a busy box
    })
    return benchTarget('varnish', [server], { hit: 'x-bench-cache', memoryBudgetBytes: memory, cleanup: () => rm(dir, { recursive: true, force: true }) })
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}
