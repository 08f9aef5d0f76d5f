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

  /**
   * The client of a request from `peer` (the socket's remote address) carrying the given
   * X-Forwarded-For header(s). Undefined only when the peer address itself is unusable.
   */
  resolve (peer: string | undefined, forwardedFor: string | readonly string[] | undefined): ClientAddress | undefined {
    const socketIp = peer === undefined ? undefined : parseIp(peer)
    if (socketIp === undefined) return undefined
    if (forwardedFor === undefined || this.#trusted.size === 0 || !this.isTrusted(socketIp)) return { ip: socketIp, source: 'socket' }
    const hops = (typeof forwardedFor === 'string' ? forwardedFor : forwardedFor.join(',')).split(',')
    let client: IpAddress = socketIp
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
}
