/**
 * Headless Chromium driven over the Chrome DevTools Protocol, for browser-player tests
 * (hls.js). No puppeteer: the browser is Debian's `chromium`, the protocol goes over
 * undici's WebSocket, and the only commands used are Runtime.evaluate and Target.closeTarget.
 * Chromium is started with every background service off, so its only traffic is the page's
 * own requests to 127.0.0.1.
 * @see https://chromedevtools.github.io/devtools-protocol/
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebSocket } from 'undici'

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']

/** The Chromium executable, or undefined when none is installed (`apt-get install chromium`). */
export function findChromium (): string | undefined {
  return CANDIDATES.find((path) => existsSync(path))
}

/** A page in a running headless Chromium. */
export interface BrowserPage {
  /** Evaluates an expression in the page and returns its JSON value (promises are awaited). */
  evaluate<T> (expression: string): Promise<T>
  /** Polls `expression` until it returns a truthy value or `timeoutMs` passes (then throws with the last value). */
  waitFor<T> (expression: string, timeoutMs: number): Promise<T>
  close (): Promise<void>
}

/** Starts Chromium on `url` and connects to that page. */
export async function openPage (executable: string, url: string): Promise<BrowserPage> {
  const profile = await mkdtemp(join(tmpdir(), 'streamedge-chromium-'))
  const child = spawn(executable, [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
    '--no-first-run', '--no-default-browser-check', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-default-apps', '--disable-extensions',
    '--disable-domain-reliability', '--disable-client-side-phishing-detection', '--metrics-recording-only',
    '--autoplay-policy=no-user-gesture-required', '--mute-audio',
    `--user-data-dir=${profile}`, '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', url,
  ], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  const cleanup = async (): Promise<void> => {
    // Chromium's own children (zygote, renderer, utility, crash handler) live in its process
    // group and may still write to the profile after the browser process is gone: kill the
    // group, then remove the profile with retries (a CI run once failed here with ENOTEMPTY).
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {}
    }
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve))
    await rm(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
  }
  try {
    const port = await devToolsPort(child)
    const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as Array<{ type: string, url: string, webSocketDebuggerUrl: string }>
    const page = targets.find((target) => target.type === 'page')
    if (page === undefined) throw new Error(`Chromium has no page target: ${JSON.stringify(targets)}`)
    const cdp = await CdpConnection.open(page.webSocketDebuggerUrl)
    const evaluate = async <T>(expression: string): Promise<T> => {
      const reply = await cdp.send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }) as { result: { value?: unknown }, exceptionDetails?: { text: string, exception?: { description?: string } } }
      if (reply.exceptionDetails !== undefined) throw new Error(`page threw: ${reply.exceptionDetails.exception?.description ?? reply.exceptionDetails.text}`)
      return reply.result.value as T
    }
    return {
      evaluate,
      async waitFor<T> (expression: string, timeoutMs: number): Promise<T> {
        const deadline = Date.now() + timeoutMs
        let last: unknown
        for (;;) {
          last = await evaluate<unknown>(expression)
          if (last !== undefined && last !== null && last !== false && last !== 0 && last !== '') return last as T
          if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${expression}; last value ${JSON.stringify(last)}`)
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      },
      async close () {
        cdp.close()
        await cleanup()
      },
    }
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** Reads "DevTools listening on ws://127.0.0.1:PORT/..." from Chromium's stderr. */
async function devToolsPort (child: ChildProcess): Promise<number> {
  return await new Promise<number>((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => reject(new Error(`Chromium did not open DevTools within 30 s:\n${text.slice(-2000)}`)), 30_000)
    child.stderr?.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      const match = /DevTools listening on ws:\/\/127\.0\.0\.1:(\d+)\//.exec(text)
      if (match !== null) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`Chromium exited (${String(code)}) before DevTools was up:\n${text.slice(-2000)}`))
    })
  })
}

/** One CDP WebSocket: numbered commands, replies matched by id. */
class CdpConnection {
  readonly #ws: WebSocket
  readonly #pending = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()
  #nextId = 1

  private constructor (ws: WebSocket) {
    this.#ws = ws
    ws.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data)) as { id?: number, result?: unknown, error?: { message: string } }
      if (message.id === undefined) return
      const waiter = this.#pending.get(message.id)
      this.#pending.delete(message.id)
      if (message.error !== undefined) waiter?.reject(new Error(`CDP: ${message.error.message}`))
      else waiter?.resolve(message.result)
    })
    ws.addEventListener('close', () => {
      for (const waiter of this.#pending.values()) waiter.reject(new Error('CDP connection closed'))
      this.#pending.clear()
    })
  }

  static async open (url: string): Promise<CdpConnection> {
    const ws = new WebSocket(url)
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true })
      ws.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)), { once: true })
    })
    return new CdpConnection(ws)
  }

  async send (method: string, params: Record<string, unknown>): Promise<unknown> {
    const id = this.#nextId++
    const reply = new Promise<unknown>((resolve, reject) => this.#pending.set(id, { resolve, reject }))
    this.#ws.send(JSON.stringify({ id, method, params }))
    return await reply
  }

  close (): void {
    this.#ws.close()
  }
}
