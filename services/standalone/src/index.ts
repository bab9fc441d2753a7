export { startEmbeddedRedis, freePort, RedisNotInstalledError, type EmbeddedRedis } from './embedded-redis.js';
