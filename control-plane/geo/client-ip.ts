/** The client-address resolver lives in lib/net (edges and shields use it too). */
export { ClientIpResolver, type ClientAddress } from '../../lib/net/client-ip.ts'
