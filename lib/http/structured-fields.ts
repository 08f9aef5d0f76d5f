/**
 * A small RFC 8941 Structured Fields parser (Lists and Dictionaries) and the two
 * serialisation helpers Cache-Status needs. Parsing failures return undefined: the
 * RFC requires the whole field to be ignored then (§4.2).
 *
 * Not hot-path code (CDN-Cache-Control is read once per fill, Cache-Status parsing
 * is for tests and multi-tier tooling), so it favours clarity over speed.
 * @see https://www.rfc-editor.org/rfc/rfc8941#section-4.2
 */

/** A parsed bare item, tagged so Integer and Decimal (and String and Token) stay apart. */
export type SfBareItem =
  | { readonly type: 'integer' | 'decimal', readonly value: number }
  | { readonly type: 'string' | 'token' | 'binary', readonly value: string }
  | { readonly type: 'boolean', readonly value: boolean }

export type SfParams = ReadonlyMap<string, SfBareItem>

/** An Item with its parameters (RFC 8941 §3.3). */
export interface SfItem {
  readonly kind: 'item'
  readonly value: SfBareItem
  readonly params: SfParams
}

/** An Inner List with its parameters (RFC 8941 §3.1.1). */
export interface SfInnerList {
  readonly kind: 'inner-list'
  readonly items: readonly SfItem[]
  readonly params: SfParams
}

export type SfMember = SfItem | SfInnerList

const TRUE: SfBareItem = { type: 'boolean', value: true }
const TOKEN_RE = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/
const MAX_INTEGER = 999_999_999_999_999

class ParseError extends Error {}

/** Joins repeated field lines the way RFC 8941 §4.2 step 1 asks (comma-separated). */
function joinLines (value: string | readonly string[]): string {
  return typeof value === 'string' ? value : value.join(', ')
}

/**
 * Parses a List field. Returns undefined when the value is not a valid List.
 * @see https://www.rfc-editor.org/rfc/rfc8941#section-4.2.1
 */
export function parseSfList (value: string | readonly string[]): SfMember[] | undefined {
  return parseTop(joinLines(value), (p) => p.list())
}

/**
 * Parses a Dictionary field (later duplicate keys overwrite earlier ones, §4.2.2).
 * Returns undefined when the value is not a valid Dictionary.
 * @see https://www.rfc-editor.org/rfc/rfc8941#section-4.2.2
 */
export function parseSfDictionary (value: string | readonly string[]): Map<string, SfMember> | undefined {
  return parseTop(joinLines(value), (p) => p.dictionary())
}

/** True when `value` can be serialised as an sf-token (RFC 8941 §3.3.4). */
export function isSfToken (value: string): boolean {
  return TOKEN_RE.test(value)
}

/**
 * Serialises an sf-string (RFC 8941 §4.1.6). Characters an sf-string cannot carry
 * (controls, non-ASCII) become `?` rather than failing: these strings are diagnostics.
 */
export function toSfString (value: string): string {
  let out = '"'
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c === 0x22 || c === 0x5c) out += '\\' + value[i]
    else if (c < 0x20 || c > 0x7e) out += '?'
    else out += value[i]
  }
  return out + '"'
}

function parseTop<T> (input: string, fn: (p: Parser) => T): T | undefined {
  const p = new Parser(input)
  try {
    p.skipSp()
    const out = fn(p)
    p.skipSp()
    return p.done() ? out : undefined
  } catch (err) {
    if (err instanceof ParseError) return undefined
    throw err
  }
}

function isDigit (c: number): boolean { return c >= 0x30 && c <= 0x39 }
function isLcAlpha (c: number): boolean { return c >= 0x61 && c <= 0x7a }
function isAlpha (c: number): boolean { return isLcAlpha(c) || (c >= 0x41 && c <= 0x5a) }

// tchar (RFC 9110 §5.6.2) plus ":" and "/" as sf-token allows.
function isTokenChar (c: number): boolean {
  return isAlpha(c) || isDigit(c) || "!#$%&'*+-.^_`|~:/".includes(String.fromCharCode(c))
}

function isKeyChar (c: number): boolean {
  return isLcAlpha(c) || isDigit(c) || c === 0x5f || c === 0x2d || c === 0x2e || c === 0x2a
}

function isBase64Char (c: number): boolean {
  return isAlpha(c) || isDigit(c) || c === 0x2b || c === 0x2f || c === 0x3d
}

class Parser {
  readonly #s: string
  #i = 0

  constructor (s: string) {
    this.#s = s
  }

  done (): boolean {
    return this.#i >= this.#s.length
  }

  skipSp (): void {
    while (this.#s.charCodeAt(this.#i) === 0x20) this.#i++
  }

  #skipOws (): void {
    let c = this.#s.charCodeAt(this.#i)
    while (c === 0x20 || c === 0x09) c = this.#s.charCodeAt(++this.#i)
  }

  #peek (): number { return this.#s.charCodeAt(this.#i) }

  // Shared tail of List and Dictionary members: OWS, then either the end or "," OWS member.
  #next (): boolean {
    this.#skipOws()
    if (this.done()) return false
    if (this.#peek() !== 0x2c) throw new ParseError()
    this.#i++
    this.#skipOws()
    if (this.done()) throw new ParseError() // trailing comma
    return true
  }

  list (): SfMember[] {
    const out: SfMember[] = []
    if (this.done()) return out
    do {
      out.push(this.#member())
    } while (this.#next())
    return out
  }

  dictionary (): Map<string, SfMember> {
    const out = new Map<string, SfMember>()
    if (this.done()) return out
    do {
      const key = this.#key()
      if (this.#peek() === 0x3d) {
        this.#i++
        out.set(key, this.#member())
      } else {
        out.set(key, { kind: 'item', value: TRUE, params: this.#params() })
      }
    } while (this.#next())
    return out
  }

  #member (): SfMember {
    if (this.#peek() !== 0x28) return this.#item()
    this.#i++
    const items: SfItem[] = []
    for (;;) {
      this.skipSp()
      if (this.#peek() === 0x29) {
        this.#i++
        return { kind: 'inner-list', items, params: this.#params() }
      }
      items.push(this.#item())
      const c = this.#peek()
      if (c !== 0x20 && c !== 0x29) throw new ParseError()
    }
  }

  #item (): SfItem {
    const value = this.#bareItem()
    return { kind: 'item', value, params: this.#params() }
  }

  #params (): SfParams {
    const params = new Map<string, SfBareItem>()
    while (this.#peek() === 0x3b) {
      this.#i++
      this.skipSp()
      const key = this.#key()
      let value = TRUE
      if (this.#peek() === 0x3d) {
        this.#i++
        value = this.#bareItem()
      }
      params.set(key, value)
    }
    return params
  }

  #key (): string {
    const start = this.#i
    const c = this.#peek()
    if (!isLcAlpha(c) && c !== 0x2a) throw new ParseError()
    this.#i++
    while (isKeyChar(this.#peek())) this.#i++
    return this.#s.slice(start, this.#i)
  }

  #bareItem (): SfBareItem {
    const c = this.#peek()
    if (c === 0x2d || isDigit(c)) return this.#number()
    if (c === 0x22) return { type: 'string', value: this.#string() }
    if (isAlpha(c) || c === 0x2a) return { type: 'token', value: this.#token() }
    if (c === 0x3a) return { type: 'binary', value: this.#binary() }
    if (c === 0x3f) return { type: 'boolean', value: this.#boolean() }
    throw new ParseError()
  }

  #number (): SfBareItem {
    const start = this.#i
    if (this.#peek() === 0x2d) this.#i++
    const digitsStart = this.#i
    while (isDigit(this.#peek())) this.#i++
    const intDigits = this.#i - digitsStart
    if (intDigits === 0) throw new ParseError()
    if (this.#peek() !== 0x2e) {
      if (intDigits > 15) throw new ParseError()
      const value = Number(this.#s.slice(start, this.#i))
      if (Math.abs(value) > MAX_INTEGER) throw new ParseError()
      return { type: 'integer', value }
    }
    if (intDigits > 12) throw new ParseError()
    this.#i++
    const fracStart = this.#i
    while (isDigit(this.#peek())) this.#i++
    const fracDigits = this.#i - fracStart
    if (fracDigits < 1 || fracDigits > 3) throw new ParseError()
    return { type: 'decimal', value: Number(this.#s.slice(start, this.#i)) }
  }

  #string (): string {
    this.#i++
    let out = ''
    for (;;) {
      if (this.done()) throw new ParseError()
      const c = this.#peek()
      this.#i++
      if (c === 0x22) return out
      if (c === 0x5c) {
        const e = this.#peek()
        if (e !== 0x22 && e !== 0x5c) throw new ParseError()
        this.#i++
        out += String.fromCharCode(e)
      } else if (c < 0x20 || c > 0x7e) {
        throw new ParseError()
      } else {
        out += String.fromCharCode(c)
      }
    }
  }

  #token (): string {
    const start = this.#i
    this.#i++
    while (isTokenChar(this.#peek())) this.#i++
    return this.#s.slice(start, this.#i)
  }

  #binary (): string {
    this.#i++
    const start = this.#i
    while (isBase64Char(this.#peek())) this.#i++
    if (this.#peek() !== 0x3a) throw new ParseError()
    const out = this.#s.slice(start, this.#i)
    this.#i++
    return out
  }

  #boolean (): boolean {
    this.#i++
    const c = this.#peek()
    if (c !== 0x30 && c !== 0x31) throw new ParseError()
    this.#i++
    return c === 0x31
  }
}
