/**
 * What a cache node adds to and checks on forwarded messages: Via (RFC 9110 §7.6.3),
 * CDN-Loop (RFC 8586) to refuse requests that loop between tiers, and
 * X-Forwarded-For with only trusted proxies' entries believed.
 */
import type { IncomingMessage } from 'node:http'
import { ClientIpResolver } from '../../lib/net/client-ip.ts'

/** More CDN-Loop entries than this is a loop even without our own name (a runaway chain). */
export const MAX_CDN_HOPS = 16

export interface ForwardingOptions {
  /** This node's name in Via and CDN-Loop (a pseudonym: no host or port is revealed). */
  readonly name: string
  /** Peers whose X-Forwarded-For is believed (CIDR prefixes or addresses). */
  readonly trustedProxies: readonly string[]
}

export class Forwarding {
  readonly name: string
  /** `1.1 <name>`, the Via member this node adds. */
  readonly via: string
  readonly #clients: ClientIpResolver
  readonly #anyTrusted: boolean

  constructor (options: ForwardingOptions) {
    if (!/^[A-Za-z0-9._~!$&'*+-]+$/.test(options.name)) {
      throw new TypeError(`Expected options.name to be a token (letters, digits, . _ ~ - ...), got ${JSON.stringify(options.name)}`)
    }
    this.name = options.name
    this.via = `1.1 ${options.name}`
    this.#clients = new ClientIpResolver(options.trustedProxies, 'options.trustedProxies')
    this.#anyTrusted = options.trustedProxies.length > 0
  }

  /**
   * Has this request been through this node already (its name in CDN-Loop), or through
   * more than MAX_CDN_HOPS caches? RFC 8586 §2: such a request must not be forwarded.
   */
  isLoop (req: IncomingMessage): boolean {
    const header = req.headers['cdn-loop']
    return header !== undefined && this.loops(header)
  }

  /** {@link isLoop} for a CDN-Loop field value. */
  loops (header: string | readonly string[]): boolean {
    const members = (typeof header === 'string' ? header : header.join(',')).split(',')
    if (members.length > MAX_CDN_HOPS) return true
    for (const member of members) {
      const semi = member.indexOf(';')
      if ((semi < 0 ? member : member.slice(0, semi)).trim() === this.name) return true
    }
    return false
  }

  /** The client's address: the socket peer, or from X-Forwarded-For when the peer is a trusted proxy. */
  clientOf (req: IncomingMessage): string | undefined {
    return this.clientFrom(req.socket.remoteAddress, req.headers['x-forwarded-for'])
  }

  /**
   * The client's address from the socket peer and X-Forwarded-For. Without a header to
   * believe (the common case) the peer is returned as is, with no parsing.
   */
  clientFrom (peer: string | undefined, forwardedFor: string | readonly string[] | undefined): string | undefined {
    if (forwardedFor === undefined || !this.#anyTrusted) {
      // IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 peer) is the IPv4 address.
      return peer !== undefined && peer.startsWith('::ffff:') && peer.includes('.') ? peer.slice(7) : peer
    }
    return this.#clients.resolve(peer, forwardedFor)?.ip.text
  }

  /**
   * Headers this node adds to a request it forwards: Via and CDN-Loop appended; the
   * X-Forwarded-For chain kept only as far as trusted proxies vouch for it, then the peer.
   */
  upstreamHeaders (req: IncomingMessage): Record<string, string> {
    return this.upstreamHeadersFrom(req.socket.remoteAddress, req.headers)
  }

  /** {@link upstreamHeaders} from the socket peer and the request's headers. */
  upstreamHeadersFrom (remoteAddress: string | undefined, headers: Readonly<Record<string, string | readonly string[] | undefined>>): Record<string, string> {
    const peer = remoteAddress ?? ''
    const xff = headers['x-forwarded-for']
    const prior = this.#clients.resolve(remoteAddress, xff)?.source === 'x-forwarded-for' ? join(xff) : undefined
    return {
      via: append(headers.via, this.via),
      'cdn-loop': append(headers['cdn-loop'], this.name),
      'x-forwarded-for': prior === undefined ? peer : `${prior}, ${peer}`,
    }
  }

  /** Via and CDN-Loop for a request this node makes on its own (prefetch, prefill, background refresh). */
  ownHeaders (): Record<string, string> {
    return { via: this.via, 'cdn-loop': this.name }
  }

  /** The Via value of a response this node sends: the upstream's Via plus ours. */
  responseVia (upstreamVia: string | readonly string[] | undefined): string {
    return append(upstreamVia, this.via)
  }
}

function join (value: string | readonly string[] | undefined): string | undefined {
  return value === undefined ? undefined : typeof value === 'string' ? value : value.join(', ')
}

function append (existing: string | readonly string[] | undefined, ours: string): string {
  const prior = join(existing)
  return prior === undefined || prior === '' ? ours : `${prior}, ${ours}`
}
