/**
 * A full garbage collection on demand for tests that watch what the GC frees (pooled
 * buffers given up, freed heap memory): the flag makes new contexts expose `gc`.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

setFlagsFromString('--expose-gc')

/** V8's gc(): a full collection, now. */
export const gc = runInNewContext('gc') as () => void
