import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { ErrorCode, errorResponse, type JsonRpcRequest } from '../src/mcp/jsonrpc.js'
import type { SessionRecord } from '../src/mcp/sessions/store.js'
import type { Handled, TransportContext } from '../src/mcp/server.js'
import { parseEventId } from '../src/hub/types.js'
import { SERVER_NAME, SERVER_VERSION } from '../src/meta.js'
import { draining, findSession, insufficientScope, keepSessionAlive, lazyRequestStream, overBudget, rawJsonBodies, readMessage, storeUnavailable } from './mcp-common.js'
import { StoreUnavailableError } from '../src/budget.js'
import {
  REQUEST_STREAM_RETRY_MS, SESSION_HEADER, acceptsPost, accepts, eraOf, header as readHeader, publicResume, sessionGetTarget,
  sessionVersionError
} from '../src/mcp/http.js'
import { serveStateless } from './mcp-stateless.js'
import { POLICY } from '../plugins/policy.js'
import { PUBLIC_STREAM, newRequestPart, requestStream, sessionStream } from '../src/mcp/keys.js'
import { refuse, refuseRpc } from '../src/http-error.js'
import { logFailure } from '../src/ignore.js'
import { clientOf } from '../plugins/auth.js'
import { kEngine } from '../src/mcp/engine.js'

const header = (request: FastifyRequest, name: string): string | undefined => readHeader(request.headers, name)

/**
 * Streamable HTTP at /mcp, both eras. Session era (2025-03-26 … 2025-11-25): initialize opens a
 * session, POST carries one JSON-RPC message, GET opens a session's stream (or the public stream
 * without a session), DELETE ends the session. Stateless era (2026-07-28): routes/mcp-stateless.ts.
 */
const mcpRoutes: FastifyPluginAsyncTypebox = async (app) => {
  rawJsonBodies(app)
  const server = app[kEngine].server

  /** 400 when a session request's MCP-Protocol-Version names a version that has no sessions. */
  async function badVersion (request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const error = sessionVersionError(header(request, 'mcp-protocol-version'))
    if (error === undefined) return false
    await refuseRpc(reply, 400, errorResponse(null, ErrorCode.InvalidRequest, error))
    return true
  }

  /** The session the request names: 400 without the header, 404 when unknown or not the caller's. */
  async function requireSession (request: FastifyRequest, reply: FastifyReply): Promise<SessionRecord | undefined> {
    const id = header(request, SESSION_HEADER)
    if (id === undefined) {
      await refuseRpc(reply, 400, errorResponse(null, ErrorCode.InvalidRequest, 'Bad Request: Mcp-Session-Id header is required'))
      return undefined
    }
    const session = await findSession(app, request, id, 'streamable-http')
    if (session === undefined) {
      await refuseRpc(reply, 404, errorResponse(null, ErrorCode.SessionNotFound, 'Session not found'))
      return undefined
    }
    return session
  }

  app.post('/mcp', { config: { policy: POLICY.client } }, async (request, reply) => {
    if (!acceptsPost(header(request, 'accept'))) {
      return await refuseRpc(reply, 406, errorResponse(null, ErrorCode.InvalidRequest, 'Not Acceptable: Accept must include application/json and text/event-stream'))
    }
    const classified = await readMessage(request, reply)
    if (classified === undefined) return reply
    // Draining: responses and notifications still land (in-flight calls may await them); new work is refused.
    if (classified.kind === 'request' && app.lifecycle.draining) return await draining(reply, classified.message.id)

    // One endpoint, two eras (http.ts eraOf): initialize and session traffic, or stateless requests.
    if (eraOf(classified.message, request.headers) === 'stateless') return await serveStateless(app, classified.message, request, reply)

    if (classified.kind === 'request' && classified.message.method === 'initialize') {
      let ticket
      try {
        ticket = await app[kEngine].ledger.admit(clientOf(request))
      } catch (err) {
        if (err instanceof StoreUnavailableError) return await storeUnavailable(reply, classified.message.id, err)
        throw err
      }
      if (ticket === undefined) {
        return await overBudget(reply, classified.message.id, `Too many sessions for this client (MAX_SESSIONS_PER_CLIENT ${app[kEngine].ledger.quota.limit}); end one with DELETE /mcp or let it idle out, then retry`)
      }
      const ctx: TransportContext = { transport: 'streamable-http', identity: request.identity, auth: request.authInfo, log: request.log, send: async () => {} }
      let handled: Handled | undefined
      try {
        handled = await server.initialize(classified.message, ctx)
      } finally {
        // No session created (refused params, or a failure): the quota unit goes back at once.
        if (handled?.created === undefined) ticket.release()
        else ticket.bind(handled.created.id)
      }
      // A refused initialize (MAX_CLIENT_INFO_BYTES) is a JSON-RPC error and opens no session.
      const { response, created } = handled
      if (created !== undefined) {
        await app.hub.addBroadcastTarget(sessionStream(created.id))
        reply.header(SESSION_HEADER, created.id)
      }
      return await reply.code(200).type('application/json; charset=utf-8').send(response)
    }

    if (await badVersion(request, reply)) return reply
    const session = await requireSession(request, reply)
    if (session === undefined) return reply
    app[kEngine].sessions.touch(session.id).catch((err: unknown) => { request.log.warn({ err }, 'session touch failed') })

    if (classified.kind !== 'request') {
      await app[kEngine].receive(classified.message, session)
      return await reply.code(202).send()
    }
    if (await insufficientScope(app, request, reply, classified.message)) return reply
    return await answer(classified.message, session, request, reply)
  })

  /**
   * Runs one request. The answer is JSON unless the handler sends something first (progress, a
   * log, a server→client request, a stream cut): then the reply becomes an SSE stream of its own,
   * resumable with Last-Event-ID, carrying those messages and finally the response.
   */
  async function answer (
    message: JsonRpcRequest, session: SessionRecord, request: FastifyRequest, reply: FastifyReply
  ): Promise<FastifyReply> {
    const stream = lazyRequestStream(app, reply, () => {
      const part = newRequestPart()
      const key = requestStream(session.id, part)
      // The session owns its request streams: they go when it goes (and the oldest past the bound now).
      const drop = app[kEngine].ledger.addStream(session.id, key)
      if (drop !== undefined) app.hub.forget(drop).catch(logFailure(request.log, 'forgetting a request stream failed'))
      const runs = app[kEngine].runs
      return {
        opts: { key, kind: 'request', streamPart: part, headers: { [SESSION_HEADER]: session.id }, retryMs: REQUEST_STREAM_RETRY_MS },
        priming: true,
        // Scale-out: the run lease, so a resume on another replica ends with an error if this one dies.
        hold: runs === undefined ? undefined : async () => await runs.hold(session.id, message.id, key)
      }
    })
    const ctx: TransportContext = { transport: 'streamable-http', identity: request.identity, auth: request.authInfo, log: request.log, send: stream.send, closeStream: stream.closeStream }
    // A client that goes away before its answer cancels the call. Once the reply is an SSE stream
    // the client may resume it with Last-Event-ID, so a cut stream does not cancel (the spec's rule).
    const onClose = (): void => {
      if (!reply.raw.writableFinished && !stream.streaming) server.cancel(session.id, message.id, 'client disconnected')
    }
    reply.raw.once('close', onClose)
    const { response } = await server.request(message, session, ctx).finally(() => { reply.raw.off('close', onClose) })
    if (await stream.finish(response) !== undefined) return reply
    // A cancelled request gets no JSON-RPC response, but a POST that carried a request must still be
    // answered as JSON or an event stream (Streamable HTTP): an event stream that ends empty.
    if (response === null) {
      return await reply.code(200).header(SESSION_HEADER, session.id).header('cache-control', 'no-cache')
        .type('text/event-stream; charset=utf-8').send('')
    }
    return await reply.code(200).header(SESSION_HEADER, session.id).type('application/json; charset=utf-8').send(response)
  }

  app.get('/mcp', { config: { policy: POLICY.client } }, async (request, reply) => {
    if (!accepts(header(request, 'accept'), 'text/event-stream')) {
      return await refuse(reply, 406, 'Accept must include text/event-stream')
    }
    const last = parseEventId(header(request, 'last-event-id'))
    if (header(request, SESSION_HEADER) === undefined) {
      // The public stream: welcome, heartbeats and operator broadcasts (a browser EventSource can open it).
      await app.hub.open(reply, {
        key: PUBLIC_STREAM,
        kind: 'public',
        streamPart: 'p',
        ...publicResume(last),
        prelude: [{ event: 'welcome', data: JSON.stringify({ message: 'Connected to the MCP server event stream', server: SERVER_NAME, version: SERVER_VERSION, timestamp: new Date().toISOString() }) }]
      })
      return reply
    }
    if (await badVersion(request, reply)) return reply
    const session = await requireSession(request, reply)
    if (session === undefined) return reply
    app[kEngine].sessions.touch(session.id).catch((err: unknown) => { request.log.warn({ err }, 'session touch failed') })
    const stop = keepSessionAlive(app, session.id)
    // Last-Event-ID names the stream to resume (http.ts sessionGetTarget).
    const { part, kind, retryMs, afterSeq, afterEpoch } = sessionGetTarget(last)
    const key = requestStream(session.id, part)
    // A resumed request stream whose runner dies ends with a JSON-RPC error (scale-out: the run lease).
    const unwatch = kind === 'request' && app[kEngine].runs !== undefined ? app[kEngine].runs.watch(key) : () => {}
    const stopAll = (): void => { stop(); unwatch() }
    // Released on every path: the stream's close, no capacity, or a failed attach.
    const conn = await app.hub.open(reply, {
      key,
      kind,
      streamPart: part,
      headers: { [SESSION_HEADER]: session.id },
      afterSeq,
      afterEpoch,
      retryMs,
      // While a stream is open here the session does not idle out.
      onClose: stopAll
    }).catch((err: unknown) => { stopAll(); throw err })
    if (conn === undefined) stopAll()
    return reply
  })

  app.delete('/mcp', { config: { policy: POLICY.client } }, async (request, reply) => {
    if (await badVersion(request, reply)) return reply
    const session = await requireSession(request, reply)
    if (session === undefined) return reply
    await app[kEngine].endSession(session.id, 'session deleted')
    return await reply.code(204).send()
  })

  app.route({
    method: ['PUT', 'PATCH'],
    url: '/mcp',
    config: { policy: POLICY.client },
    handler: async (_request, reply) => await refuse(reply, 405, 'Use POST, GET or DELETE on /mcp', { headers: { allow: 'GET, POST, DELETE, OPTIONS' } })
  })
}

export default mcpRoutes
