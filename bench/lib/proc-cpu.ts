/**
 * CPU time of another process from Linux procfs: utime + stime of /proc/<pid>/stat,
 * which covers every thread of the process (JS, GC, libuv pool, loader thread).
 * @see proc(5), /proc/pid/stat fields 14 (utime) and 15 (stime), in clock ticks
 */
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'

/** CPU ticks of one process as read from /proc/<pid>/stat. */
export interface ProcCpuTicks {
  readonly utimeTicks: number
  readonly stimeTicks: number
}

/**
 * Parses the text of /proc/<pid>/stat. Field 2 (comm) is in parentheses and may hold
 * spaces or parentheses itself, so fields are counted from the last ')'.
 */
export function parseProcStat (text: string): ProcCpuTicks {
  const close = text.lastIndexOf(')')
  if (close < 0) throw new TypeError(`Expected /proc/<pid>/stat text with "(comm)", got ${JSON.stringify(text.slice(0, 80))}`)
  // After "pid (comm) " comes field 3 (state); utime and stime are fields 14 and 15.
  const rest = text.slice(close + 2).trim().split(/\s+/)
  const utimeTicks = Number(rest[14 - 3])
  const stimeTicks = Number(rest[15 - 3])
  if (!Number.isSafeInteger(utimeTicks) || !Number.isSafeInteger(stimeTicks)) {
    throw new TypeError(`Expected integer utime and stime in /proc/<pid>/stat, got ${String(rest[11])} and ${String(rest[12])}`)
  }
  return { utimeTicks, stimeTicks }
}

let cachedTicksPerSecond: number | undefined

/** Clock ticks per second (`getconf CLK_TCK`), 100 when getconf is unavailable. */
export function clockTicksPerSecond (): number {
  if (cachedTicksPerSecond !== undefined) return cachedTicksPerSecond
  let ticks = 100
  try {
    const out = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).trim())
    if (Number.isSafeInteger(out) && out > 0) ticks = out
  } catch {
    // no getconf: Linux has used USER_HZ = 100 on every mainstream architecture
  }
  cachedTicksPerSecond = ticks
  return ticks
}

/** CPU seconds split into user and system for process `pid`. Linux only. */
export function readProcessCpu (pid: number): CpuSample {
  const { utimeTicks, stimeTicks } = parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  const hz = clockTicksPerSecond()
  return { userSeconds: utimeTicks / hz, systemSeconds: stimeTicks / hz }
}

/** User and system CPU seconds. */
export interface CpuSample {
  readonly userSeconds: number
  readonly systemSeconds: number
}

/** CPU seconds used between two samples of the same process. */
export function cpuSecondsBetween (before: CpuSample, after: CpuSample): number {
  return (after.userSeconds - before.userSeconds) + (after.systemSeconds - before.systemSeconds)
}

/** Machine-wide CPU ticks from the first line of /proc/stat. */
export interface SystemCpuTicks {
  /** Every state but idle and iowait (steal included: it is time this VM did not get). */
  readonly busyTicks: number
  readonly totalTicks: number
}

/**
 * Parses /proc/stat's aggregate `cpu` line: user nice system idle iowait irq softirq
 * steal guest guest_nice. guest and guest_nice are already inside user and nice.
 */
export function parseSystemStat (text: string): SystemCpuTicks {
  const line = text.split('\n').find((l) => l.startsWith('cpu '))
  if (line === undefined) throw new TypeError('Expected a "cpu " line in /proc/stat')
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number)
  if (f.length < 4 || f.some((n) => !Number.isSafeInteger(n))) throw new TypeError(`Expected integer fields on the /proc/stat cpu line, got ${JSON.stringify(line)}`)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f
  const busyTicks = user + nice + system + irq + softirq + steal
  return { busyTicks, totalTicks: busyTicks + idle + iowait }
}

/** Machine-wide busy CPU seconds so far (all cores). */
export function readSystemBusySeconds (): number {
  return parseSystemStat(readFileSync('/proc/stat', 'utf8')).busyTicks / clockTicksPerSecond()
}

/** The fields of /proc/<pid>/stat the bench reads beyond CPU: the parent, and CPU of reaped children. */
export interface ProcStatEntry extends ProcCpuTicks {
  readonly pid: number
  readonly ppid: number
  /** CPU of children this process has waited for (fields 16 and 17). */
  readonly cutimeTicks: number
  readonly cstimeTicks: number
}

/** Parses /proc/<pid>/stat text into pid, ppid and the four CPU fields (see {@link parseProcStat}). */
export function parseProcStatEntry (text: string): ProcStatEntry {
  const { utimeTicks, stimeTicks } = parseProcStat(text)
  const close = text.lastIndexOf(')')
  const rest = text.slice(close + 2).trim().split(/\s+/)
  const pid = Number(text.slice(0, text.indexOf('(')).trim())
  const ppid = Number(rest[4 - 3])
  const cutimeTicks = Number(rest[16 - 3])
  const cstimeTicks = Number(rest[17 - 3])
  if (![pid, ppid, cutimeTicks, cstimeTicks].every(Number.isSafeInteger)) {
    throw new TypeError(`Expected integer pid, ppid, cutime and cstime in /proc/<pid>/stat, got ${JSON.stringify(text.slice(0, 120))}`)
  }
  return { pid, ppid, utimeTicks, stimeTicks, cutimeTicks, cstimeTicks }
}

/** `root` and every process below it, from a (pid, ppid) table; pure, so it is testable without /proc. */
export function processTree (root: number, table: ReadonlyArray<{ readonly pid: number, readonly ppid: number }>): number[] {
  const children = new Map<number, number[]>()
  for (const { pid, ppid } of table) {
    const list = children.get(ppid)
    if (list === undefined) children.set(ppid, [pid])
    else list.push(pid)
  }
  const out: number[] = []
  const queue = [root]
  const seen = new Set<number>()
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    if (seen.has(pid)) continue
    seen.add(pid)
    out.push(pid)
    queue.push(...children.get(pid) ?? [])
  }
  return out
}

function readAllStats (): ProcStatEntry[] {
  const out: ProcStatEntry[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      out.push(parseProcStatEntry(readFileSync(`/proc/${name}/stat`, 'utf8')))
    } catch {
      // the process exited between readdir and read, or is not readable
    }
  }
  return out
}

/**
 * CPU seconds of `rootPid` and every live process below it: nginx's master and workers,
 * Varnish's manager and cache child. A process that exits between two samples takes its
 * share with it, so samples are only compared while the tree is stable (one server run).
 */
export function readProcessTreeCpu (rootPid: number): CpuSample {
  const all = readAllStats()
  const byPid = new Map(all.map((e) => [e.pid, e]))
  const hz = clockTicksPerSecond()
  let user = 0
  let system = 0
  for (const pid of processTree(rootPid, all)) {
    const e = byPid.get(pid)
    if (e === undefined) continue
    user += e.utimeTicks
    system += e.stimeTicks
  }
  return { userSeconds: user / hz, systemSeconds: system / hz }
}

/**
 * CPU seconds of this process's children that have exited and been reaped (cutime,
 * cstime of /proc/self/stat): how the bench charges a wrk run, which is gone before it
 * could be sampled.
 */
export function readReapedChildrenCpu (): CpuSample {
  const e = parseProcStatEntry(readFileSync('/proc/self/stat', 'utf8'))
  const hz = clockTicksPerSecond()
  return { userSeconds: e.cutimeTicks / hz, systemSeconds: e.cstimeTicks / hz }
}

/** `VmRSS` of /proc/<pid>/status text, in bytes; NaN when absent (a zombie, a kernel thread). */
export function parseVmRssBytes (statusText: string): number {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(statusText)
  return match === null ? Number.NaN : Number(match[1]) * 1024
}

/** Resident memory of `rootPid` and every live process below it, in bytes. */
export function readProcessTreeRssBytes (rootPid: number): number {
  let total = 0
  for (const pid of processTree(rootPid, readAllStats())) {
    try {
      const rss = parseVmRssBytes(readFileSync(`/proc/${pid}/status`, 'utf8'))
      if (Number.isFinite(rss)) total += rss
    } catch {
      // exited meanwhile
    }
  }
  return total
}

/** Is a process with this pid still there (signal 0: nothing is sent)? */
export function processAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
