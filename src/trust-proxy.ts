import proxyAddr from '@fastify/proxy-addr'

/**
 * Which peers may speak for the client through `X-Forwarded-For/-Host/-Proto` (TRUST_PROXY):
 * proxies named by address, CIDR or preset, optionally at most `hops` of them. Never "any peer":
 * a bare hop count or `true` would let anyone who reaches the app port directly choose its own
 * address (a new client for every budget) and its own Host (past the DNS-rebinding guard).
 */
export interface TrustProxy {
  /** Addresses, CIDRs or presets (`loopback`, `linklocal`, `uniquelocal`; `private` = `uniquelocal`). */
  addresses: string[]
  /** At most this many proxies, each of them in `addresses`; undefined = as many as are in the list. */
  hops?: number
}

const PRESETS: Record<string, string> = { loopback: 'loopback', linklocal: 'linklocal', uniquelocal: 'uniquelocal', private: 'uniquelocal' }

export const TRUST_PROXY_HELP = 'name the proxies by address: TRUST_PROXY=loopback (nginx on this host), TRUST_PROXY=private (a container network), ' +
  'addresses or CIDRs (TRUST_PROXY=10.0.0.5,fd00::/8), optionally with a hop count after them (TRUST_PROXY=private,1)'

/** TRUST_PROXY text → TrustProxy (false when off); throws an Error with the reason otherwise. */
export function parseTrustProxy (raw: string): false | TrustProxy {
  const v = raw.trim()
  if (v === '' || v.toLowerCase() === 'false') return false
  if (v.toLowerCase() === 'true' || /^\d+$/.test(v)) throw new Error(`trusts X-Forwarded-* from any peer; ${TRUST_PROXY_HELP}`)
  const addresses: string[] = []
  let hops: number | undefined
  for (const part of v.split(',').map((x) => x.trim()).filter(Boolean)) {
    if (/^\d+$/.test(part)) {
      if (hops !== undefined) throw new Error('has more than one hop count')
      hops = Number(part)
      if (hops < 1) throw new Error('has a hop count below 1 (leave TRUST_PROXY unset to trust no proxy)')
      continue
    }
    addresses.push(PRESETS[part.toLowerCase()] ?? part)
  }
  if (addresses.length === 0) throw new Error(`names no proxy address; ${TRUST_PROXY_HELP}`)
  try {
    proxyAddr.compile(addresses)
  } catch (err) {
    throw new Error(`is not a list of addresses, CIDRs or presets (${err instanceof Error ? err.message : String(err)}); ${TRUST_PROXY_HELP}`)
  }
  return hops === undefined ? { addresses } : { addresses, hops }
}

/**
 * Fastify's `trustProxy` function: the peer at position `hop` (0 = the socket's) is a proxy when
 * its address is in the list and, with a hop count, it is among the first `hops`.
 */
export function trustProxyFunction (trust: TrustProxy): (address: string, hop: number) => boolean {
  const inList = proxyAddr.compile(trust.addresses)
  const hops = trust.hops ?? Infinity
  return (address, hop) => hop < hops && inList(address, hop)
}
