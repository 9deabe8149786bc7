/**
 * The package's public surface (`import sseMcp from 'sse-mcp-server'`): the Fastify plugin, the
 * service's app, the config, and the types a tool author needs. Nothing else is public.
 */
import sseMcp from './plugin.js'

export default sseMcp
export { sseMcp }
export type { SseMcpOptions, Authenticate, CustomAuth } from './plugin.js'
export { buildApp, type App, type BuildAppOptions, type BuildOptions } from './app.js'
export { loadConfig, resolveConfig, ConfigError, type Config, type ConfigInput, type Budgets, type JsonLimits } from './config.js'
export { RpcError, ErrorCode } from './mcp/jsonrpc.js'
export type { CallContext, AuthInfo } from './mcp/context.js'
export { UserError } from './mcp/errors.js'
export type { AskOptions, ClientRequests, ElicitParams, ElicitResult, CreateMessageParams, CreateMessageResult, SamplingMessage, ListRootsResult } from './mcp/context.js'
export type { ToolResult, Declared } from './mcp/registry.js'
export type { OAuthConfig } from './oauth.js'
export type {
  ToolDefinition, ResourceDefinition, ResourceTemplateDefinition, PromptDefinition, PromptArgument, ToolAnnotations,
  CallToolResult, ReadResourceResult, ResourceContents, GetPromptResult, PromptMessage, ContentBlock,
  AnySchema, Infer, StandardSchemaV1, JsonSchemaObject, Catalog, CatalogTool, CatalogEntry
} from './mcp/registry.js'
export type { LoggingLevel, SessionRecord } from './mcp/sessions/store.js'
export { defineTool, ToolModuleError, type ToolModule, type Definition } from './tools/loader.js'
// The one decorator a host gets (app.mcp) by declaration merging: this re-export makes a consumer's
// `import … from 'sse-mcp-server'` load it. The plugin's own state (config, hub, lifecycle, redis,
// auth) is decorated in its encapsulated context only, so its types are not shipped either.
export type { Mcp, McpObserver, McpPluginOptions } from './mcp/api.js'
export type { Hub } from './hub/types.js'
// Routes added to the service's app (buildApp) declare a policy: `config: { policy }`.
export type { RoutePolicy } from '../plugins/route-policy.js'
