/**
 * Process-tree CPU and RSS from /proc (bench/lib/proc-cpu.ts): the pure parsers, and real
 * readings of this process and a child that burns CPU.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'
import { parseProcStatEntry, parseVmRssBytes, processAlive, processTree, readProcessTreeCpu, readProcessTreeRssBytes, readReapedChildrenCpu } from '../../../bench/lib/proc-cpu.ts'

t.test('parseProcStatEntry reads pid, ppid and the children\'s CPU', async (t) => {
  const fields = Array.from({ length: 49 }, (_, i) => String(i + 3))
  fields[0] = 'S'
  fields[4 - 3] = '77'
  fields[14 - 3] = '10'
  fields[15 - 3] = '20'
  fields[16 - 3] = '30'
  fields[17 - 3] = '40'
  const e = parseProcStatEntry(`4242 (nginx: worker (x)) ${fields.join(' ')}\n`)
  t.same(e, { pid: 4242, ppid: 77, utimeTicks: 10, stimeTicks: 20, cutimeTicks: 30, cstimeTicks: 40 })
  t.throws(() => parseProcStatEntry('x (y) S'), TypeError)
})

t.test('processTree walks children breadth-first and ignores cycles and strangers', async (t) => {
  const table = [{ pid: 1, ppid: 0 }, { pid: 10, ppid: 1 }, { pid: 11, ppid: 10 }, { pid: 12, ppid: 10 }, { pid: 13, ppid: 11 }, { pid: 20, ppid: 1 }, { pid: 99, ppid: 98 }]
  t.same(processTree(10, table), [10, 11, 12, 13])
  t.same(processTree(99, table), [99])
  t.same(processTree(5, [{ pid: 5, ppid: 6 }, { pid: 6, ppid: 5 }]), [5, 6], 'a cycle ends')
})

t.test('parseVmRssBytes', async (t) => {
  t.equal(parseVmRssBytes('Name:\tnode\nVmRSS:\t  1024 kB\nVmSwap:\t0 kB\n'), 1024 * 1024)
  t.ok(Number.isNaN(parseVmRssBytes('Name:\tkthreadd\n')))
})

t.test('a busy child counts in its parent\'s tree, and in reaped-children CPU once it exits', { skip: process.platform === 'linux' ? false : 'needs /proc' }, async (t) => {
  const reaped0 = readReapedChildrenCpu()
  // the child burns 0.4 s of its own CPU (not of wall time: a busy machine may give it less), then says so
  const burn = 'const end = 0.4e6; while (process.cpuUsage().user + process.cpuUsage().system < end); process.stdout.write("burned\\n"); setTimeout(() => {}, 30000)'
  const child = spawn(process.execPath, ['-e', burn], { stdio: ['ignore', 'pipe', 'ignore'] })
  t.teardown(() => { child.kill('SIGKILL') })
  await once(child.stdout, 'data')
  // /proc's counters tick at CLK_TCK: let the last tick land
  await new Promise((resolve) => setTimeout(resolve, 50))
  const tree = readProcessTreeCpu(process.pid)
  const own = readProcessTreeCpu(child.pid!)
  t.ok(own.userSeconds + own.systemSeconds >= 0.2, `child burned ${own.userSeconds + own.systemSeconds} s`)
  t.ok(tree.userSeconds + tree.systemSeconds >= own.userSeconds + own.systemSeconds, 'the parent\'s tree includes the child')
  t.ok(readProcessTreeRssBytes(process.pid) > readProcessTreeRssBytes(child.pid!), 'tree RSS adds the parent to the child')
  child.kill('SIGKILL')
  await once(child, 'exit')
  const reaped = readReapedChildrenCpu()
  t.ok(reaped.userSeconds + reaped.systemSeconds - reaped0.userSeconds - reaped0.systemSeconds >= 0.2, 'its CPU moved to the reaped-children counters')
})

t.test('processAlive: this process is there; a child that exited and was reaped is not', async (t) => {
  t.equal(processAlive(process.pid), true)
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await once(child, 'exit')
  t.equal(processAlive(child.pid!), false)
})
