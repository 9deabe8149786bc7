import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { newListenStream, newStatelessStream } from '../src/mcp/keys.js'
import { refuseRpc } from '../src/http-error.js'
import { ErrorCode, RpcError, errorResponse, type JsonRpcMessage, type JsonRpcRequest, type JsonRpcResponse } from '../src/mcp/jsonrpc.js'
import {
  STATELESS_METHODS, listenAcknowledged, listenComplete, newCallId, readListenFilter, readRequestMeta, type RequestMeta
} from '../src/mcp/stateless.js'
import { checkStatelessHeaders, mirroredName, refusalStatus, statelessStatus } from '../src/mcp/http.js'
import { insufficientScope, lazyRequestStream, overBudget, storeUnavailable } from './mcp-common.js'
import { StoreUnavailableError, cap, type Release } from '../src/budget.js'
import { logFailure } from '../src/ignore.js'
import { clientOf } from '../plugins/auth.js'
import { kEngine } from '../src/mcp/engine.js'

/**
 * The stateless era (MCP 2026-07-28) on POST /mcp: a request without Mcp-Session-Id whose `_meta`
 * or MCP-Protocol-Version header is a stateless version. Validates `_meta` (-32602), the protocol version
 * header against the body (-32020) and the version (-32022), the Mcp-Method / Mcp-Name /
 * Mcp-Param-* headers (-32020), then answers with JSON or a request-scoped SSE stream, or opens a
 * subscriptions/listen stream on the hub. Closing a response stream cancels the request.
 */

/** A request refused before it runs: its error's status (http.ts refusalStatus). */
async function fail (reply: FastifyReply, id: JsonRpcRequest['id'], err: RpcError): Promise<FastifyReply> {
  return await refuseRpc(reply, refusalStatus(err.code), errorResponse(id, err.code, err.message, err.data))
}

/** Serves one stateless message. */
export async function serveStateless (
  app: FastifyInstance, message: JsonRpcMessage, request: FastifyRequest, reply: FastifyReply
): Promise<FastifyReply> {
  // Responses have nothing to answer in this era; notifications are accepted and need no action.
  if (!('method' in message) || !('id' in message)) return await reply.code(202).send()
  let meta: RequestMeta
  try {
    meta = readRequestMeta(message.params)
    const name = message.method === 'tools/call' ? mirroredName(message) : undefined
    const tool = name === undefined ? undefined : app[kEngine].server.registry.tools.get(name)
    checkStatelessHeaders(request.headers, message, meta, tool?.listing.inputSchema)
  } catch (err) {
    if (err instanceof RpcError) return await fail(reply, message.id, err)
    throw err
  }
  if (!STATELESS_METHODS.has(message.method)) {
    return await refuseRpc(reply, 404, errorResponse(message.id, ErrorCode.MethodNotFound, `Method not found: ${cap(message.method)}`))
  }
  if (await insufficientScope(app, request, reply, message)) return reply
  if (message.method === 'subscriptions/listen') return await listen(app, message, reply)
  // MAX_INFLIGHT_PER_CLIENT: the stateless counterpart of MAX_INFLIGHT_PER_SESSION, per identity (else IP).
  const quota = app[kEngine].statelessInflight
  let release: Release | undefined
  try {
    release = await quota.take(clientOf(request))
  } catch (err) {
    if (err instanceof StoreUnavailableError) return await storeUnavailable(reply, message.id, err)
    throw err
  }
  if (release === undefined) {
    return await overBudget(reply, message.id, `Too many concurrent requests from this client (MAX_INFLIGHT_PER_CLIENT ${quota.limit}); retry when one finishes`)
  }
  try {
    return await answer(app, message, meta, request, reply)
  } finally {
    release()
  }
}

/**
 * Runs one stateless request: JSON unless the handler sends something first (progress, a log),
 * then an SSE stream of its own carrying those and the response. Not resumable (2026-07-28).
 */
async function answer (
  app: FastifyInstance, message: JsonRpcRequest, meta: RequestMeta, request: FastifyRequest, reply: FastifyReply
): Promise<FastifyReply> {
  const sid = newCallId()
  // The client closing its response (stream) cancels the request.
  reply.raw.once('close', () => { if (!reply.raw.writableFinished) app[kEngine].server.cancel(sid, message.id, 'client closed the stream') })
  const stream = lazyRequestStream(app, reply, () => {
    const key = newStatelessStream()
    // Not resumable in this era: the key's log goes once the stream is closed (after its last byte).
    return { opts: { key, kind: 'request', streamPart: 'm', onClose: () => { app.hub.forget(key).catch(logFailure(app.log, 'forgetting a stateless stream failed')) } } }
  })
  let response: JsonRpcResponse | null
  try {
    response = await app[kEngine].stateless.handle(message, meta, request.identity, { transport: 'streamable-http', identity: request.identity, auth: request.authInfo, log: request.log, send: stream.send }, sid, clientOf(request))
  } catch (err) {
    if (err instanceof StoreUnavailableError && !stream.streaming) return await storeUnavailable(reply, message.id, err)
    if (!(err instanceof RpcError)) throw err
    response = errorResponse(message.id, err.code, err.message, err.data)
  }
  if (await stream.finish(response) !== undefined) return reply
  if (response === null) return await reply.code(202).send()
  const status = 'error' in response ? statelessStatus(response.error.code) : 200
  if ('error' in response && status !== 200) return await refuseRpc(reply, status, response)
  return await reply.code(200).type('application/json; charset=utf-8').send(response)
}

/**
 * subscriptions/listen: an SSE stream on the hub that starts with the acknowledgment and then
 * carries the change notifications the filter asked for, from every replica, until either side
 * closes it (on shutdown the server ends it with the request's result).
 */
async function listen (app: FastifyInstance, message: JsonRpcRequest, reply: FastifyReply): Promise<FastifyReply> {
  let filter
  try {
    filter = readListenFilter(message.params, app.config.budgets.listenFilterBytes, app.budgetRefusals.counter('listen_filter_bytes'))
  } catch (err) {
    if (err instanceof RpcError) return await fail(reply, message.id, err)
    throw err
  }
  const key = newListenStream()
  // Registered before the stream opens, replayed from the start: nothing between ack and live is lost.
  app[kEngine].listeners.add(key, {
    id: message.id,
    filter,
    send: async (n) => { await app.hub.publish(key, { event: 'message', data: JSON.stringify(n) }) },
    end: async () => {
      await app.hub.publish(key, { event: 'message', data: JSON.stringify(listenComplete(message.id)) })
      await app.hub.end(key)
    },
    fail: async (why) => {
      try {
        await app.hub.publish(key, { event: 'message', data: JSON.stringify(errorResponse(message.id, ErrorCode.InternalError, why)) })
        await app.hub.end(key)
      } catch {
        // The error cannot be logged (Redis unavailable): the stream ends without it, never stays open silent.
        app.hub.closeConnections(key)
      }
    }
  })
  const conn = await app.hub.open(reply, {
    key,
    kind: 'listen',
    streamPart: 'n',
    afterSeq: 0,
    prelude: [{ event: 'message', data: JSON.stringify(listenAcknowledged(message.id, filter)) }],
    onClose: () => {
      app[kEngine].listeners.remove(key)
      app.hub.forget(key).catch(logFailure(app.log, 'forgetting a listen stream failed'))
    }
  })
  if (conn === undefined) {
    app[kEngine].listeners.remove(key)
    await app.hub.forget(key)
  }
  return reply
}
