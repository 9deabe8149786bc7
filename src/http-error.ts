import { STATUS_CODES } from 'node:http'

/** The body of every HTTP error the server writes (not JSON-RPC): Fastify's own shape. */
export interface HttpErrorBody {
  statusCode: number
  error: string
  message: string
}

/** The one way to build an HTTP error body: `{ statusCode, error: <reason phrase>, message }`. */
export function httpError (statusCode: number, message: string): HttpErrorBody {
  return { statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message }
}

/** What a request or stream refused while the server drains for shutdown is told (503 + Retry-After). */
export const SHUTTING_DOWN = 'Server is shutting down; retry on another instance'
