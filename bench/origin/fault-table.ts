/**
 * A scripted misbehaviour for matching requests. Fields combine: the delay runs first,
 * then either `status` or the real content is sent, throttled and/or truncated.
 */
export interface Fault {
  /** Wait this long before sending the status line and headers. */
  readonly delayMs?: number
  /** Stream the body in small slices at about this rate. */
  readonly bytesPerSecond?: number
  /** Declare the full Content-Length, send this many body bytes, then destroy the socket. */
  readonly truncateAtBytes?: number
  /** Answer this status with a short text body instead of the content. */
  readonly status?: number
  /** Response headers to add or override (names are case-insensitive). */
  readonly headers?: Readonly<Record<string, string>>
  /** Apply to the next N matching requests only, then remove the fault. */
  readonly times?: number
}

const FAULT_KEYS = new Set(['delayMs', 'bytesPerSecond', 'truncateAtBytes', 'status', 'headers', 'times'])
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * Checks a fault from code or from the admin API and returns a normalised copy
 * (header names lower-cased). Throws TypeError naming the offending field.
 */
export function validateFault (value: unknown, name = 'fault'): Fault {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`Expected ${name} to be an object, got ${String(value)}`)
  }
  const input = value as Record<string, unknown>
  for (const key of Object.keys(input)) {
    if (!FAULT_KEYS.has(key)) throw new TypeError(`Unknown field ${name}.${key}`)
  }
  const fault: { -readonly [K in keyof Fault]: Fault[K] } = {}
  if (input['delayMs'] !== undefined) fault.delayMs = integerIn(input['delayMs'], `${name}.delayMs`, 0, 3_600_000)
  if (input['bytesPerSecond'] !== undefined) fault.bytesPerSecond = integerIn(input['bytesPerSecond'], `${name}.bytesPerSecond`, 1, Number.MAX_SAFE_INTEGER)
  if (input['truncateAtBytes'] !== undefined) fault.truncateAtBytes = integerIn(input['truncateAtBytes'], `${name}.truncateAtBytes`, 0, Number.MAX_SAFE_INTEGER)
  if (input['status'] !== undefined) fault.status = integerIn(input['status'], `${name}.status`, 200, 599)
  if (input['times'] !== undefined) fault.times = integerIn(input['times'], `${name}.times`, 1, Number.MAX_SAFE_INTEGER)
  if (input['headers'] !== undefined) fault.headers = validateHeaders(input['headers'], `${name}.headers`)
  return fault
}

function integerIn (value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new TypeError(`Expected ${name} to be an integer between ${min} and ${max}, got ${String(value)}`)
  }
  return value
}

function validateHeaders (value: unknown, name: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`Expected ${name} to be an object of strings, got ${String(value)}`)
  }
  const headers: Record<string, string> = {}
  for (const [key, headerValue] of Object.entries(value)) {
    if (!HEADER_NAME.test(key)) throw new TypeError(`Expected ${name} keys to be header names, got ${key}`)
    if (typeof headerValue !== 'string' || /[\r\n]/.test(headerValue)) {
      throw new TypeError(`Expected ${name}.${key} to be a single-line string, got ${String(headerValue)}`)
    }
    headers[key.toLowerCase()] = headerValue
  }
  return headers
}

interface Armed {
  fault: Fault
  remaining: number
}

/**
 * Faults keyed by exact path, or by prefix when the key ends with `*`. An exact key
 * beats any prefix; among prefixes the longest wins.
 */
export class FaultTable {
  #exact = new Map<string, Armed>()
  #prefixes = new Map<string, Armed>()

  /** Installs (or replaces) the fault for `pathOrPrefix`. */
  set (pathOrPrefix: string, fault: Fault): void {
    if (typeof pathOrPrefix !== 'string' || !pathOrPrefix.startsWith('/')) {
      throw new TypeError(`Expected fault path to be a string starting with "/", got ${String(pathOrPrefix)}`)
    }
    const armed = { fault, remaining: fault.times ?? Infinity }
    if (pathOrPrefix.endsWith('*')) this.#prefixes.set(pathOrPrefix.slice(0, -1), armed)
    else this.#exact.set(pathOrPrefix, armed)
  }

  /** Removes one fault by its key, or every fault when no key is given. */
  clear (pathOrPrefix?: string): void {
    if (pathOrPrefix === undefined) {
      this.#exact.clear()
      this.#prefixes.clear()
      return
    }
    if (pathOrPrefix.endsWith('*')) this.#prefixes.delete(pathOrPrefix.slice(0, -1))
    else this.#exact.delete(pathOrPrefix)
  }

  /** The fault for a request to `path`, consuming one of its `times`. */
  take (path: string): Fault | undefined {
    const exact = this.#exact.get(path)
    if (exact !== undefined) return consume(this.#exact, path, exact)
    let bestKey: string | undefined
    for (const prefix of this.#prefixes.keys()) {
      if (path.startsWith(prefix) && (bestKey === undefined || prefix.length > bestKey.length)) bestKey = prefix
    }
    if (bestKey === undefined) return undefined
    const armed = this.#prefixes.get(bestKey)
    return armed === undefined ? undefined : consume(this.#prefixes, bestKey, armed)
  }

  /** Number of installed faults. */
  get size (): number {
    return this.#exact.size + this.#prefixes.size
  }
}

function consume (table: Map<string, Armed>, key: string, armed: Armed): Fault {
  armed.remaining -= 1
  if (armed.remaining <= 0) table.delete(key)
  return armed.fault
}
