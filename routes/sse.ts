import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { ErrorCode, errorResponse, type JsonRpcMessage } from '../src/mcp/jsonrpc.js'
import type { TransportContext } from '../src/mcp/server.js'
import { parseEventId } from '../src/hub/types.js'
import { draining, findSession, insufficientScope, keepSessionAlive, rawJsonBodies, readMessage } from './mcp-common.js'
import { POLICY } from '../plugins/policy.js'
import { httpSseStream } from '../src/mcp/keys.js'
import { accepts, header, httpSseEndpoint, newHttpSseSession } from '../src/mcp/http.js'
import { refuse, refuseRpc } from '../src/http-error.js'
import { logFailure } from '../src/ignore.js'
import { clientOf } from '../plugins/auth.js'
import { StoreUnavailableError } from '../src/budget.js'
import { kEngine } from '../src/mcp/engine.js'
import { isRedisUnavailable } from '../src/hub/redis.js'

/** How long an accepted HTTP+SSE reply is retried while Redis is unavailable before its session ends. */
export const REPLY_LOG_DEADLINE_MS = 30_000

/**
 * The HTTP+SSE transport (MCP 2024-11-05): GET /sse opens the session's stream and names
 * the POST endpoint in an `endpoint` event; POST /messages?sessionId= carries client messages
 * (202), and every reply travels back on the stream as an `event: message`.
 */
const sseRoutes: FastifyPluginAsyncTypebox = async (app) => {
  rawJsonBodies(app)
  const server = app[kEngine].server

  app.get('/sse', { config: { policy: POLICY.client } }, async (request, reply) => {
    const accept = request.headers.accept
    if (accept !== undefined && !accepts(accept, 'text/event-stream')) {
      return await refuse(reply, 406, 'Accept must include text/event-stream')
    }
    const ticket = await app[kEngine].ledger.admit(clientOf(request)).catch((err: unknown) => {
      if (err instanceof StoreUnavailableError) return err
      throw err
    })
    if (ticket instanceof StoreUnavailableError) {
      return await refuse(reply, 503, ticket.message, { retryAfter: ticket.retryAfterSeconds })
    }
    if (ticket === undefined) {
      return await refuse(reply, 429, `Too many sessions for this client (MAX_SESSIONS_PER_CLIENT ${app[kEngine].ledger.quota.limit}); close one and retry`)
    }
    const session = newHttpSseSession(request.identity)
    const key = httpSseStream(session.id)
    const last = parseEventId(header(request.headers, 'last-event-id'))
    ticket.bind(session.id)
    let stop = (): void => {}
    let ended = false
    // Once, on whichever path comes first: the stream's close (also when the socket was already
    // gone at attach), a refused stream, or a failed attach.
    const end = (): void => {
      if (ended) return
      ended = true
      stop()
      app[kEngine].endSession(session.id, 'the HTTP+SSE stream closed').catch(logFailure(request.log, 'ending an HTTP+SSE session failed'))
    }
    try {
      await app[kEngine].sessions.create(session)
      await app.hub.addBroadcastTarget(key)
    } catch (err) {
      end()
      throw err
    }
    stop = keepSessionAlive(app, session.id)
    const conn = await app.hub.open(reply, {
      key,
      kind: 'http+sse',
      streamPart: 'l',
      afterSeq: last?.streamPart === 'l' ? last.seq : undefined,
      afterEpoch: last?.epoch,
      prelude: [{ event: 'endpoint', data: httpSseEndpoint(session.id, app.prefix) }],
      // In this transport the session lives as long as its stream (and its calls end with it).
      onClose: end
    }).catch((err: unknown) => { end(); throw err })
    if (conn === undefined) end()
    return reply
  })

  app.post('/messages', {
    config: { policy: POLICY.client },
    schema: { querystring: Type.Object({ sessionId: Type.Optional(Type.String({ maxLength: 128 })) }) }
  }, async (request, reply) => {
    const id = request.query.sessionId
    if (id === undefined || id === '') {
      return await refuseRpc(reply, 400, errorResponse(null, ErrorCode.InvalidRequest, 'Bad Request: sessionId query parameter is required'))
    }
    const session = await findSession(app, request, id, 'http+sse')
    if (session === undefined) return await refuseRpc(reply, 404, errorResponse(null, ErrorCode.SessionNotFound, 'Session not found'))
    const classified = await readMessage(request, reply)
    if (classified === undefined) return reply
    if (classified.kind === 'request' && app.lifecycle.draining) return await draining(reply, classified.message.id)
    app[kEngine].sessions.touch(session.id).catch((err: unknown) => { request.log.warn({ err }, 'session touch failed') })

    const key = httpSseStream(session.id)
    const publish = async (msg: JsonRpcMessage): Promise<void> => {
      await app.hub.publish(key, { event: 'message', data: JSON.stringify(msg) })
    }
    // A reply accepted (202) is never dropped silently. Before accepting, the session was read from
    // the store (Redis down: 503 above, nothing accepted). After, a reply whose append fails because
    // Redis is unavailable is retried for up to REPLY_LOG_DEADLINE_MS; past that (or on any other
    // failure) the session ends — its stream closes — so the client knows to start a new one instead
    // of waiting for an answer that will not come.
    const reply202 = async (msg: JsonRpcMessage): Promise<void> => {
      const deadline = Date.now() + REPLY_LOG_DEADLINE_MS
      for (let delay = 250; ; delay = Math.min(delay * 2, 4000)) {
        try {
          await publish(msg)
          return
        } catch (err) {
          if (!isRedisUnavailable(err) || Date.now() + delay > deadline) {
            request.log.error({ err }, 'HTTP+SSE reply could not be logged; ending the session so the client knows')
            await app[kEngine].endSession(session.id, 'a reply could not be delivered')
            return
          }
        }
        await new Promise((resolve) => setTimeout(resolve, delay))
      }
    }
    const ctx: TransportContext = { transport: 'http+sse', identity: request.identity, auth: request.authInfo, log: request.log, send: publish }
    if (classified.kind !== 'request') {
      await app[kEngine].receive(classified.message, session)
    } else {
      const message = classified.message
      if (await insufficientScope(app, request, reply, message)) return reply
      // Accepted at once; the answer follows on the stream, so a slow tool never holds the POST.
      const work = message.method === 'initialize'
        ? server.initialize(message, ctx, session)
        : server.request(message, session, ctx)
      work.then(async ({ response }) => { if (response !== null) await reply202(response) })
        .catch((err: unknown) => { request.log.error({ err }, 'HTTP+SSE message failed') })
    }
    return await reply.code(202).type('text/plain; charset=utf-8').send('Accepted')
  })
}

export default sseRoutes
