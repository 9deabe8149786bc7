import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { BudgetRefusals } from '../src/budget.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Refusals per resource budget, counted by name where each owner refuses (metrics read it). */
    budgetRefusals: BudgetRefusals
  }
}

/** The budgets registry as `app.budgetRefusals`: one per app, shared by every owner of a budget. */
const budgetsPlugin: FastifyPluginAsync = async (app) => {
  app.decorate('budgetRefusals', new BudgetRefusals())
}

export default fp(budgetsPlugin, { name: 'budgets' })
