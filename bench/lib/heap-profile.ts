/**
 * Summarises a V8 sampling heap profile (`.heapprofile`, HeapProfiler.stopSampling) into
 * allocation sites by self bytes, and the stacks (leaf first) that allocated them.
 * @see https://chromedevtools.github.io/devtools-protocol/tot/HeapProfiler/#type-SamplingHeapProfile
 */
import { shortUrl, type LineResolver } from './cpu-profile.ts'

/** One call-tree node of a sampling heap profile. */
export interface HeapProfileNode {
  readonly callFrame: { readonly functionName: string, readonly url: string, readonly lineNumber: number, readonly columnNumber?: number }
  /** Estimated bytes allocated by this frame itself and still counted (sampled size, scaled). */
  readonly selfSize: number
  readonly id?: number
  readonly children: readonly HeapProfileNode[]
}

/** The parts of a sampling heap profile this module reads. */
export interface HeapProfile {
  readonly head: HeapProfileNode
}

/** One allocation site, or one stack. */
export interface AllocationSite {
  /** The function, or for a stack its frames leaf first, joined by ` < ` ("called from"). */
  readonly functionName: string
  /**
   * `path:line` (repo-relative when under `rootUrl`); a builtin's is `(builtin) < ` and its
   * caller; a V8 pseudo-frame's, its name; empty for a stack.
   */
  readonly location: string
  readonly selfBytes: number
  /** Share of the profile's bytes, 0..100. */
  readonly selfPercent: number
}

/** The summary. */
export interface HeapProfileSummary {
  readonly totalBytes: number
  readonly topSites: readonly AllocationSite[]
  /** The deepest `stackDepth` frames of each allocating stack. */
  readonly topStacks: readonly AllocationSite[]
}

/** Options of {@link summariseHeapProfile}. */
export interface HeapProfileOptions {
  /** Entries in each top list (default 20). */
  readonly top?: number
  /** Cut from locations, e.g. `file:///work/main/`. */
  readonly rootUrl?: string
  /** Maps tsx's one-line output back to TypeScript lines (bench/lib/cpu-profile.ts). */
  readonly resolveLine?: LineResolver
  /** Frames kept per stack (default 5). */
  readonly stackDepth?: number
}

/** Self bytes per allocation site (function and location) and per stack, largest first. */
export function summariseHeapProfile (profile: HeapProfile, options: HeapProfileOptions = {}): HeapProfileSummary {
  const top = options.top ?? 20
  const depth = options.stackDepth ?? 5
  const sites = new Map<string, { functionName: string, location: string, bytes: number }>()
  const stacks = new Map<string, number>()
  let total = 0
  // A builtin (Map's set, Array's push: no URL) is named after its caller, which is what tells
  // the sites apart; V8's pseudo-frames, "(V8 API)" and the like, stand alone.
  const name = (node: HeapProfileNode, caller: string | undefined): { functionName: string, location: string, frame: string } => {
    const frame = node.callFrame
    const functionName = frame.functionName === '' ? '(anonymous)' : frame.functionName
    if (frame.url === '') {
      const builtin = !functionName.startsWith('(')
      const location = !builtin ? functionName : caller === undefined ? '(builtin)' : `(builtin) < ${caller}`
      return { functionName, location, frame: builtin ? `${functionName} (builtin)` : functionName }
    }
    const file = shortUrl(frame.url, options.rootUrl)
    const line = options.resolveLine?.(frame.url, frame.lineNumber, frame.columnNumber ?? 0)
    const location = line !== undefined ? `${file}:${line + 1}` : frame.lineNumber > 0 ? `${file}:${frame.lineNumber + 1}` : file
    return { functionName, location, frame: `${functionName} ${location}` }
  }
  // iterative: a deep recursion in the profiled program gives a deep tree
  const pending: Array<{ node: HeapProfileNode, path: readonly string[] }> = [{ node: profile.head, path: [] }]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { node, path } = next
    const site = node === profile.head ? undefined : name(node, path.at(-1))
    const here = site === undefined ? path : [...depth > 1 ? path.slice(-(depth - 1)) : [], site.frame]
    if (site !== undefined && node.selfSize > 0) {
      total += node.selfSize
      const key = `${site.functionName}\0${site.location}`
      const entry = sites.get(key) ?? { functionName: site.functionName, location: site.location, bytes: 0 }
      entry.bytes += node.selfSize
      sites.set(key, entry)
      const stack = [...here].reverse().join(' < ')
      stacks.set(stack, (stacks.get(stack) ?? 0) + node.selfSize)
    }
    for (const child of node.children) pending.push({ node: child, path: here })
  }
  const percent = (bytes: number): number => total > 0 ? (bytes / total) * 100 : 0
  return {
    totalBytes: total,
    topSites: [...sites.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top).map((s) => ({ functionName: s.functionName, location: s.location, selfBytes: s.bytes, selfPercent: percent(s.bytes) })),
    topStacks: [...stacks].sort((a, b) => b[1] - a[1]).slice(0, top).map(([stack, bytes]) => ({ functionName: stack, location: '', selfBytes: bytes, selfPercent: percent(bytes) })),
  }
}
