/**
 * The compact inventory a node reports: which titles it holds, as title prefixes with the
 * number of segments (and init sections) cached under each. A title is the directory of
 * its multivariant playlist when the node has seen one; otherwise the parent of the
 * segment's directory (`/vod/t1/360p/seg-1.ts` → `/vod/t1/`), the usual title/rendition
 * layout.
 */
import type { InventoryTitle } from '../../lib/protocol/prefill.ts'
import { primaryOf } from '../cache/vary.ts'
import { directoryOf, mediaKindOf } from './media-kind.ts'

/** Counts cached segments per title, most segments first. Keys may repeat (memory and disk): each counts once. */
export function buildInventory (keys: Iterable<string>, titleOf: (url: string) => string | undefined): InventoryTitle[] {
  const seen = new Set<string>()
  const counts = new Map<string, number>()
  for (const key of keys) {
    const url = primaryOf(key)
    if (seen.has(url) || mediaKindOf(url) !== 'segment') continue
    seen.add(url)
    const title = titleOf(url) ?? fallbackTitleOf(url)
    counts.set(title, (counts.get(title) ?? 0) + 1)
  }
  return [...counts]
    .map(([title, segments]) => ({ title, segments }))
    .sort((a, b) => b.segments - a.segments || (a.title < b.title ? -1 : 1))
}

/** The parent of a segment's directory, or its directory when that is the root's child. */
export function fallbackTitleOf (url: string): string {
  const dir = directoryOf(url)
  const parentEnd = dir.lastIndexOf('/', dir.length - 2)
  return parentEnd <= 0 ? dir : dir.slice(0, parentEnd + 1)
}
