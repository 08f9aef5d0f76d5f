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
   * Has this request been through this node already (its name in CDN-Loop or in Via), or
   * through more than MAX_CDN_HOPS caches? RFC 8586 §2: such a request must not be forwarded.
   * Via is checked too (RFC 9110 §7.6.3) because an intermediary outside our control may
   * drop CDN-Loop, and a loop through it would otherwise only end at a lock timeout.
   */
  isLoop (req: IncomingMessage): boolean {
    const header = req.headers['cdn-loop']
    if (header !== undefined && this.loops(header)) return true
    const via = req.headers.via
    return via !== undefined && this.viaLoops(via)
  }

  /** Does a Via field value name this node as a recipient (`<protocol> <name> [comment]`)? */
  viaLoops (header: string | readonly string[]): boolean {
    for (const member of (typeof header === 'string' ? header : header.join(',')).split(',')) {
      const parts = member.trim().split(/[ \t]+/)
      if (parts[1] === this.name) return true
    }
    return false
  }

  /** Is the socket peer itself one of the trusted proxies (not what X-Forwarded-For says)? */
  isTrustedPeer (peer: string | undefined): boolean {
    return this.#anyTrusted && this.#clients.isTrustedPeer(peer)
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
    if (forwardedFor === undefined || !this.#anyTrusted) return unmapped(peer)
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
    // The peer as clientFrom sees it (a dual-stack socket's ::ffff:a.b.c.d is a.b.c.d), so
    // the next tier and the origin read the same address this node logs.
    const peer = unmapped(remoteAddress) ?? ''
    const xff = headers['x-forwarded-for']
    const prior = this.#clients.resolve(remoteAddress, xff)?.source === 'x-forwarded-for' ? join(xff) : undefined
    return {
      via: append(headers.via, this.via),
      'cdn-loop': append(headers['cdn-loop'], this.name),
      // Always set, so a client's own X-Forwarded-For never passes through unvetted.
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

/** IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 peer) is the IPv4 address. */
function unmapped (peer: string | undefined): string | undefined {
  return peer !== undefined && peer.startsWith('::ffff:') && peer.includes('.') ? peer.slice(7) : peer
}

function join (value: string | readonly string[] | undefined): string | undefined {
  return value === undefined ? undefined : typeof value === 'string' ? value : value.join(', ')
}

function append (existing: string | readonly string[] | undefined, ours: string): string {
  const prior = join(existing)
  return prior === undefined || prior === '' ? ours : `${prior}, ${ours}`
}
