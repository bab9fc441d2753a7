export { startEmbeddedRedis, RedisNotInstalledError, type EmbeddedRedis } from './embedded-redis.js';
