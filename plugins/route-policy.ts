/**
 * What a route lets through, declared on the route itself (`config: { policy }`):
 * - `access`: `public` (anyone), `client` (a client or operator credential when auth is on),
 *   `operator` (an operator credential when auth is on; with auth off, like `client`).
 * - `crossOrigin`: `guarded` refuses a foreign Origin or Host (DNS rebinding) with 403; `open` does not.
 * - `rateLimit`: counted against RATE_LIMIT_MAX (default true); probes turn it off.
 */
export interface RoutePolicy {
  access: 'public' | 'client' | 'operator'
  crossOrigin: 'guarded' | 'open'
  rateLimit?: boolean
}

declare module 'fastify' {
  interface FastifyContextConfig {
    policy?: RoutePolicy
  }
}
