/**
 * A failure the model should read: thrown from a tool handler, its message becomes the tool result
 * (`isError: true`); from a resource or prompt handler, the JSON-RPC error's message. Any other
 * throw is the server's fault: it is logged (error level, with its stack and an error id) and the
 * client gets a generic message with that id, never the error's own text.
 */
export class UserError extends Error {
  override name = 'UserError'
}
