import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'

type ReadinessCheck = () => boolean | Promise<boolean>
/** Waits for some in-flight work to finish; resolves early when the deadline passes. */
type DrainHook = (deadline: number) => Promise<void>

function createLifecycle () {
  const checks = new Map<string, ReadinessCheck>()
  const drainHooks: DrainHook[] = []
  const state = { draining: false, startedAt: Date.now() }
  return {
    get draining () { return state.draining },
    get startedAt () { return state.startedAt },
    /** Marks the process as draining: /ready answers 503 and new streams and requests are refused. */
    startDraining () { state.draining = true },
    /** Registers work to wait for when draining (e.g. in-flight tool calls). */
    onDrain (hook: DrainHook) { drainHooks.push(hook) },
    /**
     * Graceful drain (SIGTERM): refuse new work, then let in-flight work finish for up to
     * `timeoutMs`. The caller closes the app afterwards (which tells and closes every stream).
     */
    async drain (timeoutMs: number): Promise<void> {
      state.draining = true
      const deadline = Date.now() + timeoutMs
      await Promise.all(drainHooks.map(async (hook) => await hook(deadline)))
    },
    /** Registers a dependency that must be up for /ready (e.g. Redis). */
    addReadinessCheck (name: string, check: ReadinessCheck) { checks.set(name, check) },
    /** Runs every check; a throwing check counts as down. */
    async readiness (): Promise<{ ready: boolean, checks: Record<string, boolean> }> {
      const results: Record<string, boolean> = {}
      for (const [name, check] of checks) {
        try { results[name] = await check() } catch { results[name] = false }
      }
      const ready = !state.draining && Object.values(results).every(Boolean)
      return { ready, checks: results }
    }
  }
}
export type Lifecycle = ReturnType<typeof createLifecycle>

declare module 'fastify' {
  interface FastifyInstance {
    lifecycle: Lifecycle
  }
}

/** Process lifecycle: start time, draining flag and readiness checks. */
const lifecyclePlugin: FastifyPluginAsync = async (app) => {
  app.decorate('lifecycle', createLifecycle())
  app.addHook('preClose', async () => { app.lifecycle.startDraining() })
}

export default fp(lifecyclePlugin, { name: 'lifecycle' })
