// Preload for a child run with `node --trace-gc-nvp --import <this file>` (bench/lib/gc-trace.ts
// `gcTraceNodeArgs`). V8 stamps each GC line with ms since the isolate started, a clock the
// bench cannot read, and the isolate starts some 5-150 ms after the spawn (more on a busy box).
// So this forces one scavenge at startup and prints, right after V8's line for it, the
// CLOCK_MONOTONIC µs it returned at: the pair places the bench's windows on the isolate's
// clock to about a millisecond. `gc` is taken from a fresh context, so the program's global
// scope gets no `gc`. Plain JavaScript on purpose: it loads before (and independently of) tsx.
import { writeSync } from 'node:fs'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')
gc({ type: 'minor' })
const monotonicUs = process.hrtime.bigint() / 1000n
writeSync(1, `gc-clock pid=${process.pid} monotonic_us=${monotonicUs}\n`)
