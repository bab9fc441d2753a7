/**
 * Every Redis key the system uses, in one place. All keys share the `nd:` prefix so that one Redis
 * can be inspected (or shared) safely. Changing a name here is a data migration: say so in the commit.
 */
export const PREFIX = 'nd:';

export const keys = {
  /** Hash: one library item (see item-store.ts for the fields). */
  item: (id: string) => `${PREFIX}item:${id}`,
  /** Sorted set: item ids scored by creation time (ms): browsing order and the source for re-indexing. */
  itemsByCreated: `${PREFIX}items:created`,
  /** Hash {key, size, refs}: the content-address registry, one entry per distinct SHA-256. */
  blob: (sha256: string) => `${PREFIX}blob:${sha256}`,
  blobPrefix: `${PREFIX}blob:`,
  /** Sorted set: uploads in progress (lease id scored by lease expiry, ms). */
  uploads: `${PREFIX}uploads`,
  /** Hash: lease id → JSON cleanup token of the blob store, so an expired upload can be discarded. */
  uploadTokens: `${PREFIX}uploads:tokens`,
  /** Sorted set: blob objects no longer referenced, scored by when they may be deleted (ms). */
  blobTrash: `${PREFIX}blobs:trash`,
  /** Stream: library change events (item.created / item.updated / item.deleted). */
  libraryEvents: `${PREFIX}events:library`,
  /** Hash: one user account. */
  user: (username: string) => `${PREFIX}user:${username}`,
  /** Set: all usernames. */
  users: `${PREFIX}users`,
  /** String with TTL: session token hash → username. */
  session: (tokenHash: string) => `${PREFIX}session:${tokenHash}`,
  /** Counter with TTL: failed logins from one client address (shared by REST and FTP). */
  loginFailures: (ip: string) => `${PREFIX}login:fail:${ip}`,
  /** Hash: site-wide facts (site id, schema version). */
  site: `${PREFIX}site`,
} as const;

/** Approximate cap on the library event stream (XADD MAXLEN ~). */
export const LIBRARY_EVENTS_MAXLEN = 100_000;
