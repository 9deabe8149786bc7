import type { Server, Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { constants, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2'
import { Quota } from './budget.js'

// Declared here, not in app.ts, so the package's public types (reachable from app.d.ts) do not add
// it to a host app: only the service's own app (buildApp) carries it.
declare module 'fastify' {
  interface FastifyInstance {
    /** The service's sockets; only on the service's app (buildApp), not the plugin. */
    connections?: ConnectionStats
  }
}

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
  let refused = 0
  const quota = new Quota('MAX_CONNECTIONS_PER_CLIENT', limits.perClient, () => { refused++ })
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
    get refused () { return refused }
  }
}

/**
 * Node's HTTP/2 server serves HTTP/1.1 clients (allowHTTP1) without applying headersTimeout or
 * requestTimeout to them (checked on Node 20): this puts the same bounds back. An HTTP/1.1 socket
 * must have sent a whole request head within `headersMs` of connecting (or of its previous answer
 * ending, on keep-alive), and the request's body within `requestMs`; otherwise it is destroyed.
 * An HTTP/2 request's body must arrive within `requestMs` too (the stream is reset). Streams are
 * not cut: a GET is complete once its head has arrived.
 */
export function boundHttp1OverHttp2 (server: Server, limits: { headersMs: number, requestMs: number }): void {
  const waiting = new WeakMap<Socket, NodeJS.Timeout>()
  const awaitHead = (socket: Socket): void => {
    const timer = setTimeout(() => { socket.destroy() }, limits.headersMs)
    timer.unref()
    waiting.set(socket, timer)
  }
  server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') return
    awaitHead(socket)
    socket.once('close', () => { clearTimeout(waiting.get(socket)) })
  })
  server.on('request', (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
    // HTTP/2 too: a stream whose body has not arrived within requestMs is reset (its connection,
    // which carries other streams, stays).
    const h2 = 'stream' in req ? req.stream : undefined
    const socket = req.socket
    if (h2 === undefined) clearTimeout(waiting.get(socket))
    const body = setTimeout(() => {
      if (req.complete) return
      if (h2 !== undefined) h2.close(constants.NGHTTP2_CANCEL)
      else socket.destroy()
    }, limits.requestMs)
    body.unref()
    res.once('close', () => { clearTimeout(body) })
    res.once('finish', () => {
      clearTimeout(body)
      if (h2 === undefined && !socket.destroyed) awaitHead(socket)
    })
  })
}
