/**
 * The package's public surface (`import sseMcp from 'sse-mcp-server'`): the Fastify plugin, the
 * service's app, the config, and the types a tool author needs. Nothing else is public.
 */
import sseMcp from './plugin.js'
import '../plugins/config.js'

export default sseMcp
export { sseMcp }
export type { SseMcpOptions } from './plugin.js'
export { buildApp, type App, type BuildAppOptions, type BuildOptions } from './app.js'
export { loadConfig, resolveConfig, ConfigError, type Config, type ConfigInput, type Budgets, type JsonLimits } from './config.js'
export { RpcError, ErrorCode } from './mcp/jsonrpc.js'
export type { CallContext } from './mcp/context.js'
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
// The decorators' types (app.mcp, app.hub, app.config, app.lifecycle) by declaration merging: these
// re-exports make a consumer's `import … from 'sse-mcp-server'` load the augmentations.
export type { Mcp, McpObserver, McpPluginOptions } from './mcp/api.js'
export type { HubReplies } from '../plugins/sse-hub.js'
export type { Hub } from './hub/types.js'
export type { Lifecycle } from '../plugins/lifecycle.js'
export type { RedisConnections } from '../plugins/redis.js'
export type { RoutePolicy } from '../plugins/policy.js'
