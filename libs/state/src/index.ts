export { keys, PREFIX, LIBRARY_EVENTS_MAXLEN } from './keys.js';
export { createRedis, waitForRedis, redisError, withRedis, redisReady, REDIS_COMMAND_TIMEOUT_MS } from './redis.js';
export { RedisLibraryState, type ExpiredUpload } from './library-state.js';
export { RedisUserStore, RedisSessionStore, RedisLoginThrottle, type StoredUser } from './user-store.js';
export type { Redis } from 'ioredis';
export { LuaScript } from './script.js';
export { RedisDeviceStore, RedisTransferStore, TransferStateError, type StoredDevice } from './device-store.js';
export { RedisFederationStore, type StoredLink } from './federation-store.js';
