import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { readJson } from '../src/json.js'
import { InvalidJsonError, JsonLimitError } from '../src/http-error.js'

/**
 * Every JSON body (outside the MCP routes, which read their text themselves through the same
 * reader to answer JSON-RPC errors) is parsed by src/json.ts with JSON_MAX_DEPTH / JSON_MAX_KEYS /
 * JSON_MAX_STRING_BYTES: over a limit or malformed → 400 with a message, never a 500.
 */
const jsonBodyPlugin: FastifyPluginAsync = async (app) => {
  const limits = app.config.json
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    const read = readJson(body as string, limits)
    if (read.ok) {
      done(null, read.value)
      return
    }
    done(read.reason === 'syntax' ? new InvalidJsonError(read.message) : new JsonLimitError(read.message), undefined)
  })
}

export default fp(jsonBodyPlugin, { name: 'json-body', dependencies: ['config'] })
