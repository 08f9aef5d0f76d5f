/**
 * Which address a request is from. The socket peer, unless the peer is a configured trusted
 * proxy: then X-Forwarded-For is walked from the right (the hop the trusted proxy appended)
 * past every further trusted proxy, and the first untrusted address is the client. Entries a
 * client wrote itself sit to the left of that and are never believed.
 */
import { parseCidr, parseIp, type Cidr, type IpAddress } from './ip-address.ts'
import { PrefixTable } from './prefix-table.ts'

/** The client address and how it was learnt. */
export interface ClientAddress {
  readonly ip: IpAddress
  readonly source: 'socket' | 'x-forwarded-for'
}

/** Resolves client addresses behind a set of trusted proxies. */
export class ClientIpResolver {
  readonly #trusted = new PrefixTable<true>()
  // The last socket peer, parsed: every request of a connection (and, behind a load
  // balancer, of most connections) comes from the same peer address.
  #peerText: string | undefined
  #peer: { readonly client: ClientAddress, readonly trusted: boolean } | undefined

  /** `trustedProxies` are CIDR prefixes or addresses; `field` names the setting in errors. */
  constructor (trustedProxies: readonly string[], field = 'options.trustedProxies') {
    trustedProxies.forEach((text, i) => {
      const cidr: Cidr | undefined = parseCidr(text)
      if (cidr === undefined) throw new TypeError(`Expected ${field}[${i}] to be an IP address or CIDR prefix, got ${JSON.stringify(text)}`)
      this.#trusted.add(cidr, true)
    })
  }

  /** True when `ip` is a trusted proxy. */
  isTrusted (ip: IpAddress): boolean {
    return this.#trusted.lookup(ip) !== undefined
  }

  /** True when the socket peer itself (not what X-Forwarded-For says) is a trusted proxy. */
  isTrustedPeer (peer: string | undefined): boolean {
    return peer !== undefined && this.#socketPeer(peer)?.trusted === true
  }

  /**
   * The client of a request from `peer` (the socket's remote address) carrying the given
   * X-Forwarded-For header(s). Undefined only when the peer address itself is unusable.
   */
  resolve (peer: string | undefined, forwardedFor: string | readonly string[] | undefined): ClientAddress | undefined {
    if (peer === undefined) return undefined
    const socket = this.#socketPeer(peer)
    if (socket === undefined) return undefined
    if (forwardedFor === undefined || !socket.trusted) return socket.client
    const header = typeof forwardedFor === 'string' ? forwardedFor : forwardedFor.join(',')
    if (!header.includes(',')) {
      // one hop, the common case: no split
      const hop = parseIp(header)
      return hop === undefined ? socket.client : { ip: hop, source: 'x-forwarded-for' }
    }
    const hops = header.split(',')
    let client: IpAddress = socket.client.ip
    let source: ClientAddress['source'] = 'socket'
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = parseIp(hops[i] ?? '')
      // a trusted proxy wrote garbage: nothing left of it can be believed
      if (hop === undefined) break
      client = hop
      source = 'x-forwarded-for'
      if (!this.isTrusted(hop)) break
    }
    return { ip: client, source }
  }

  /** The peer as a client, and whether it is a trusted proxy; undefined when it does not parse. */
  #socketPeer (peer: string): { readonly client: ClientAddress, readonly trusted: boolean } | undefined {
    if (peer === this.#peerText) return this.#peer
    const ip = parseIp(peer)
    const parsed = ip === undefined ? undefined : { client: { ip, source: 'socket' as const }, trusted: this.#trusted.size > 0 && this.isTrusted(ip) }
    this.#peerText = peer
    this.#peer = parsed
    return parsed
  }
}
