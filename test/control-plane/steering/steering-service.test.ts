/**
 * The title a path belongs to: the token ACL and the rendezvous key.
 */
import t from 'tap'
import { titleOf } from '../../../control-plane/steering/steering-service.ts'

t.test('the directory of the requested file, never the whole site', async (t) => {
  t.equal(titleOf('/vod/bbb/master.m3u8'), '/vod/bbb/')
  t.equal(titleOf('/live/ch1/index.m3u8'), '/live/ch1/')
  t.equal(titleOf('/vod/a/b/c/master.m3u8'), '/vod/a/b/c/')
  t.equal(titleOf('/master.m3u8'), '/master.m3u8', 'a file at the root gets a token for itself alone')
  t.equal(titleOf('/vod/bbb/'), '/vod/bbb/')
})
