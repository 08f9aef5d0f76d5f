/**
 * The inventory: segments counted per title (known masters first, the title/rendition
 * layout otherwise), each key once, playlists and other objects left out.
 */
import t from 'tap'
import { buildInventory, fallbackTitleOf } from '../../../edge/hls/title-inventory.ts'

t.test('segments are counted per title, most first; playlists and duplicates are not', async (t) => {
  const keys = [
    '/vod/a/360p/seg-0.ts', '/vod/a/360p/seg-1.ts', '/vod/a/180p/seg-0.ts', '/vod/a/master.m3u8', '/vod/a/360p/index.m3u8',
    '/vod/a/360p/seg-0.ts', // memory and disk both list it
    '/vod/b/seg-0.m4s\u0000accept-encoding=gzip', // a variant key counts under its URL
    '/vod/b/init.mp4',
    '/live/c/720p/seg-100.ts',
    '/robots.txt',
  ]
  const titleOf = (url: string): string | undefined => url.startsWith('/vod/b/') ? '/vod/b/' : undefined
  t.same(buildInventory(keys, titleOf), [
    { title: '/vod/a/', segments: 3 },
    { title: '/vod/b/', segments: 2 },
    { title: '/live/c/', segments: 1 },
  ])
})

t.test('fallback titles: the parent of the segment directory', async (t) => {
  t.equal(fallbackTitleOf('/vod/t1/360p/seg-1.ts'), '/vod/t1/')
  t.equal(fallbackTitleOf('/t1/seg-1.ts'), '/t1/')
  t.equal(fallbackTitleOf('/seg-1.ts'), '/')
})
