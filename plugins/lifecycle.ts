import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'

type ReadinessCheck = () => boolean | Promise<boolean>

function createLifecycle () {
  const checks = new Map<string, ReadinessCheck>()
  const state = { draining: false, startedAt: Date.now() }
  return {
    get draining () { return state.draining },
    get startedAt () { return state.startedAt },
    /** Marks the process as draining: /ready answers 503 and new streams are refused. */
    startDraining () { state.draining = true },
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
