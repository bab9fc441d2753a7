// The repositories over Redis: services speak to these, never to keys or scripts. Key names are
// exported only through `@nondivy/state/keys`, for tests and tools that inspect a Redis.
export { createRedis, waitForRedis, redisReady, REDIS_COMMAND_TIMEOUT_MS } from './redis.js';
export { RedisLibraryState, type ExpiredUpload } from './library-state.js';
export { RedisSearchIndex, SEARCH_INDEX_VERSION, type IndexQuery, type IndexCursor, type IndexPage } from './search-index.js';
export { LibraryEventGroup, EventStreams, EventStreamTail, type GroupEntry, type LibraryConsumerGroup, type StreamEvent } from './event-stream.js';
export { ParkedJobStore, type ParkedJob } from './parked-jobs.js';
export { SiteIdentityStore } from './site-identity-store.js';
export { RedisUserStore, RedisSessionStore, RedisLoginThrottle, type StoredUser } from './user-store.js';
export type { Redis } from 'ioredis';
export { RedisDeviceStore, RedisTransferStore, TransferStateError, type StoredDevice, type TransferTicket } from './device-store.js';
export { RedisFederationStore, type StoredLink } from './federation-store.js';
export { RedisUploadStore } from './upload-store.js';
