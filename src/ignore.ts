/**
 * Rejection handlers, so that no failure is swallowed silently (eslint forbids `.catch(() => {})`).
 *
 * `ignore(why)` is for best-effort work whose failure changes nothing anyone could act on: the
 * state expires by itself, or the connection it served is gone. The reason is the comment.
 * `logFailure(log, what)` is for everything else: the failure is logged at warn with the error.
 */
export function ignore (_why: string): (err: unknown) => void {
  // Deliberately dropped: the reason is at the call site.
  return (_err: unknown): undefined => undefined
}

/** The part of a pino/Fastify logger logFailure needs. */
export interface WarnLogger { warn: (obj: object, msg: string) => void }

export function logFailure (log: WarnLogger, what: string): (err: unknown) => void {
  return (err: unknown): void => { log.warn({ err }, what) }
}
