export { ChorusServer, startServer, type ServerOptions } from './server.js';
export {
  resolveConfig,
  loadConfigFile,
  ConfigError,
  DEFAULTS,
  DEFAULT_LIMITS,
  type ChorusConfig,
  type ChorusConfigInput,
  type AppConfig,
  type AppConfigInput,
  type Limits,
} from './config.js';
export type { Engine, Broker, PresenceStore, Publication } from './engine/types.js';
