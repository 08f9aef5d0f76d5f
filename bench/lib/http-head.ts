/**
 * A minimal HTTP/1.1 response-head parser for ResponseReader (response-reader.ts), which
 * reads raw sockets so the load clients can timestamp the first byte without an HTTP
 * client's buffering in between.
 * @see RFC 9112 §4 (status line), §5 (field lines), §6.3 (message body length)
 */

/** A parsed response head. */
export interface ResponseHead {
  readonly status: number
  /** Lower-cased field names; repeated fields are joined with ", ". */
  readonly headers: Readonly<Record<string, string>>
  /** Bytes of the head including the blank line that ends it. */
  readonly headBytes: number
  /** Content-Length when present and valid, else undefined. */
  readonly contentLength: number | undefined
}

const HEAD_END = Buffer.from('\r\n\r\n')
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/

/**
 * Parses the head at the start of `data`. Returns undefined while the head is still
 * incomplete; throws TypeError for a malformed status line or field line.
 */
export function parseResponseHead (data: Buffer): ResponseHead | undefined {
  const end = data.indexOf(HEAD_END)
  if (end < 0) return undefined
  const lines = data.subarray(0, end).toString('latin1').split('\r\n')
  const match = STATUS_LINE.exec(lines[0] ?? '')
  if (match === null) throw new TypeError(`Expected an HTTP/1.x status line, got ${JSON.stringify(lines[0])}`)
  const headers: Record<string, string> = {}
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new TypeError(`Expected a field line "name: value", got ${JSON.stringify(line)}`)
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  return { status: Number(match[1]), headers, headBytes: end + HEAD_END.length, contentLength: contentLengthOf(headers['content-length']) }
}

function contentLengthOf (value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,15}$/.test(value)) return undefined
  return Number(value)
}
