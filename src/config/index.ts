/**
 * Configuration: YAML files with line-accurate errors, `${...}` expansion,
 * REBILL_* overrides, and the zod schemas that define (and type) every setting.
 */
export { loadConfig, parseConfig, loadScenario, parseScenario, configFilePath, DEFAULT_CONFIG_FILE } from './load.js';
export { ConfigError, formatProblems, formatPath, isSecretPath, unknownKeyMessage, type ConfigProblem, type PathSegment } from './problems.js';
export { ENV_OVERRIDE_SECTIONS, MAX_ALIAS_COUNT } from './source.js';
export { configWarnings } from './warnings.js';
export { schemaProblems, type SchemaProblem } from './issues.js';
export { isLoopbackHost, KNOWN_ADMIN_TOKENS, exposureProblems } from './exposure.js';
export {
  configErrorMap,
  configSchema,
  scenarioSchema,
  planSchema,
  isAmountPath,
  planVersion,
  intervalSchema,
  gatewaySchema,
  gatewaysSchema,
  retrySchema,
  schedulerSchema,
  seedSubscriptionSchema,
  subscriptionInputSchema,
  subscriptionPatchSchema,
  pauseInputSchema,
  cancelInputSchema,
  emptyInputSchema,
  inlinePlanOf,
  planReferenceProblems,
  tokenProblems,
  inlineGatewayProblems,
  INLINE_PLAN_KEYS,
  scenarioSubscriptionSchema,
  metadataSchema,
  localDateSchema,
  timeZoneSchema,
  instantSchema,
  defaultRetryDelays,
  DEFAULT_RETRY_DELAYS,
  DEFAULT_GATEWAYS,
  GATEWAY_TYPES,
  WEBHOOK_EVENT_TYPES,
  DEFAULT_WEBHOOK_RETRY_SCHEDULE,
  type Config,
  type PlanConfig,
  type GatewayConfig,
  type SeedSubscription,
  type SubscriptionInput,
  type SubscriptionProblem,
  type RetryConfig,
  type SchedulerConfig,
  type DatabaseConfig,
  type HttpConfig,
  type WebhookConfig,
  type Scenario,
  type ScenarioSubscription,
  type ScenarioAction,
} from './schema.js';
