import type { Server } from 'node:net'
import { Quota } from './budget.js'

export interface ConnectionLimits {
  /** Open sockets one peer address may hold (MAX_CONNECTIONS_PER_CLIENT). */
  perClient: number
  /** Peers exempt from the cap: the proxies TRUST_PROXY names (every client arrives through them). */
  exempt?: (address: string) => boolean
  /**
   * A plain-HTTP socket that has sent no byte within this is destroyed (Node's headersTimeout only
   * starts with the first byte of a request). TLS servers bound it with `handshakeTimeout` instead.
   */
  firstByteMs?: number
}

export interface ConnectionStats {
  /** Sockets open now. */
  readonly open: number
  /** Sockets destroyed on arrival because their peer was at MAX_CONNECTIONS_PER_CLIENT. */
  readonly refused: number
}

/**
 * Every socket has a bound: counts the server's open sockets per peer address (TCP, before any
 * TLS handshake or HTTP parsing, so slow-header and idle sockets count like streams do) and
 * destroys a new one at once when its peer already holds `perClient`. Released when the socket
 * closes, whatever closed it. Proxies named by TRUST_PROXY are exempt: behind one, the per-client
 * bound at this level is the proxy's (nginx `limit_conn`).
 */
export function limitConnections (server: Server, limits: ConnectionLimits): ConnectionStats {
  const quota = new Quota('MAX_CONNECTIONS_PER_CLIENT', limits.perClient)
  let open = 0
  server.on('connection', (socket) => {
    const address = socket.remoteAddress ?? ''
    if (limits.exempt?.(address) !== true) {
      const release = quota.tryAcquire(address)
      if (release === undefined) {
        socket.destroy()
        return
      }
      socket.once('close', release)
    }
    open++
    let timer: NodeJS.Timeout | undefined
    if (limits.firstByteMs !== undefined) {
      timer = setTimeout(() => { if (socket.bytesRead === 0) socket.destroy() }, limits.firstByteMs)
      timer.unref()
    }
    socket.once('close', () => {
      open--
      clearTimeout(timer)
    })
  })
  return {
    get open () { return open },
    get refused () { return quota.refused }
  }
}
