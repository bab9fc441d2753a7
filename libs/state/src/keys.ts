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
  /**
   * Sorted set: one uploader's item ids scored by creation time (ms), kept by the item create and
   * delete scripts and rebuilt with the search index: FTP's /upload/ lists a member's latest items.
   */
  itemsByOwner: (username: string) => `${PREFIX}items:by:${username}`,
  itemsByOwnerPrefix: `${PREFIX}items:by:`,
  /** Hash {key, size, refs}: the content-address registry, one entry per distinct SHA-256. */
  blob: (sha256: string) => `${PREFIX}blob:${sha256}`,
  blobPrefix: `${PREFIX}blob:`,
  /** Sorted set: uploads in progress (lease id scored by lease expiry, ms). */
  uploads: `${PREFIX}uploads`,
  /** Hash: lease id → JSON cleanup token of the blob store, so an expired upload can be discarded. */
  uploadTokens: `${PREFIX}uploads:tokens`,
  /**
   * Hash: one resumable (tus) upload: owner, length, offset, metadata, input (JSON), hash (saved
   * SHA-256 state, base64), token (the blob store's staging token), created, expires (ms), and once
   * finished `result` (JSON {itemId, path}), when the record lingers with a TTL.
   */
  resumable: (id: string) => `${PREFIX}resumable:${id}`,
  /** List: the durable pieces of a resumable upload's staging area (s3: part ETags, part n at n - 1). */
  resumableParts: (id: string) => `${PREFIX}resumable:${id}:parts`,
  /** String with a TTL: the holder of a resumable upload's write lock. */
  resumableLock: (id: string) => `${PREFIX}resumable:${id}:lock`,
  /** String with a TTL: another request waits for the lock (its holder yields when its client is quiet). */
  resumableWanted: (id: string) => `${PREFIX}resumable:${id}:wanted`,
  /** Sorted set: unfinished resumable upload ids scored by when they expire (ms); the sweeper reads it. */
  resumableExpiring: `${PREFIX}resumable:expiring`,
  /** Sorted set: one owner's unfinished resumable upload ids scored by their length (the caps). */
  resumableByOwner: (owner: string) => `${PREFIX}resumable:by:${owner}`,
  /** Hash: one owner's unfinished uploads named by path (FTP), place key → upload id (one per place). */
  resumableAt: (owner: string) => `${PREFIX}resumable:at:${owner}`,
  /** Prefix of every resumable upload key (tests check that none is left). */
  resumablePrefix: `${PREFIX}resumable:`,
  /** Sorted set: blob objects no longer referenced, scored by when they may be deleted (ms). */
  blobTrash: `${PREFIX}blobs:trash`,
  /** Stream: library change events (item.created / item.updated / item.deleted). */
  libraryEvents: `${PREFIX}events:library`,
  /** Hash: one user account. */
  user: (username: string) => `${PREFIX}user:${username}`,
  /** Set: all usernames. */
  users: `${PREFIX}users`,
  /** String with TTL: session token hash → `username` and, after a newline, when it was issued (ms, Redis clock). */
  session: (tokenHash: string) => `${PREFIX}session:${tokenHash}`,
  /** Sorted set: a user's session token hashes scored by expiry (ms), so a password change can end them all. */
  userSessions: (username: string) => `${PREFIX}user:${username}:sessions`,
  /** Counter with TTL: failed logins from one client address (shared by REST and FTP). */
  loginFailures: (ip: string) => `${PREFIX}login:fail:${ip}`,
  /** Prefix of every search index key (see `index`); the index can be dropped and rebuilt from items. */
  indexPrefix: `${PREFIX}ix:`,
  index: {
    /** Sorted set: ids containing a term, scored by the term's field weight in that item. */
    term: (term: string) => `${PREFIX}ix:t:${term}`,
    /** Sorted set (all scores 0): every indexed term, for prefix expansion by ZRANGEBYLEX. */
    terms: `${PREFIX}ix:terms`,
    kind: (kind: string) => `${PREFIX}ix:kind:${kind}`,
    /**
     * Hash name → id: the items' unique path names in one folder of a kind (`folder` '' is the kind's
     * root, FTP's /library/<kind>/; else `A/B`, /library/<kind>/A/B/).
     */
    names: (kind: string, folder: string) => `${PREFIX}ix:name:${kind}/${folder === '' ? '' : `${folder}/`}`,
    /** Sorted set (scores 0): the ids of the items directly in a folder of a kind (filter `folder`). */
    inFolder: (kind: string, folder: string) => `${PREFIX}ix:f:${kind}/${folder}`,
    /** Sorted set (scores 0): the ids of the items in a folder (not the root) or below it (filter `under`). */
    underFolder: (kind: string, folder: string) => `${PREFIX}ix:u:${kind}/${folder}`,
    /** Sorted set (scores 0, read by name): the names of the folders directly under a folder of a kind. */
    subfolders: (kind: string, folder: string) => `${PREFIX}ix:d:${kind}/${folder}`,
    /** Hash folder → how many items are in it or below it (every folder but the root). */
    folderItems: (kind: string) => `${PREFIX}ix:fc:${kind}`,
    /**
     * Hash folder → what keeps it existing: its items and the made folders (see `foldersMade`) in it
     * or below it. A folder exists while this is above 0.
     */
    folderHolds: (kind: string) => `${PREFIX}ix:fh:${kind}`,
    tag: (tag: string) => `${PREFIX}ix:tag:${tag}`,
    size: `${PREFIX}ix:size`,
    title: `${PREFIX}ix:title`,
    popular: `${PREFIX}ix:popular`,
    /** Hash kind → item count; sorted set tag → item count (facets of the whole library). */
    kindCounts: `${PREFIX}ix:facet:kind`,
    tagCounts: `${PREFIX}ix:facet:tags`,
    /** Counter bumped by every index change: query caches are keyed by it. */
    generation: `${PREFIX}ix:gen`,
    /** Cached query results (sorted sets with a short TTL). */
    cache: (hash: string) => `${PREFIX}ix:q:${hash}`,
  },
  /**
   * Set: the folders of a kind made on purpose (FTP MKD), which exist while empty, until removed
   * (RMD). Not index data: kept across index rebuilds, which count them again.
   */
  foldersMade: (kind: string) => `${PREFIX}folders:made:${kind}`,
  foldersMadePrefix: `${PREFIX}folders:made:`,
  /** Consumer group of the enrichment worker on the library event stream. */
  enrichmentGroup: 'enrichment',
  /** Hash: item id → JSON {reason, at, attempts} of enrichment work given up after retries. */
  enrichmentParked: `${PREFIX}enrich:parked`,
  /** Hash with a TTL (renewed by heartbeats): one online device. */
  device: (id: string) => `${PREFIX}device:${id}`,
  /** Sorted set: device ids scored by their last heartbeat (ms); the discovery service sweeps it. */
  devices: `${PREFIX}devices`,
  /** Stream: device.online / device.offline events. */
  presenceEvents: `${PREFIX}events:presence`,
  /** Hash with a TTL: one device-to-device transfer (offer, state, route). */
  transfer: (id: string) => `${PREFIX}transfer:${id}`,
  /** Sorted set: open offers scored by when they expire (ms). */
  transfersExpiring: `${PREFIX}transfers:expiring`,
  /** Set: the transfers a device is party to (cleaned as they expire). */
  deviceTransfers: (deviceId: string) => `${PREFIX}device:${deviceId}:transfers`,
  /**
   * Sorted sets of a device's open offers (ids scored by their deadline, ms), the ones it sent and the
   * ones it received. Entries are dropped lazily (past their deadline, or no longer `offered`) each
   * time one is counted, so each set stays within its cap.
   */
  deviceOffersSent: (deviceId: string) => `${PREFIX}device:${deviceId}:transfers:offered:sent`,
  deviceOffersReceived: (deviceId: string) => `${PREFIX}device:${deviceId}:transfers:offered:received`,
  /**
   * String with a short TTL: a download ticket (hash of its secret → JSON {transfer, n, device}),
   * taken once: how a browser follows a plain link to one relayed file.
   */
  transferTicket: (secretHash: string) => `${PREFIX}transfer:ticket:${secretHash}`,
  /** Stream: transfer.changed events. */
  transferEvents: `${PREFIX}events:transfers`,
  /** String with a TTL: a federation invite (hash of its secret → JSON), usable once. */
  fedInvite: (secretHash: string) => `${PREFIX}fed:invite:${secretHash}`,
  /** Hash: one linked site (id, name, url, public key, state, last contact). */
  fedLink: (siteId: string) => `${PREFIX}fed:link:${siteId}`,
  /** Set: the ids of linked sites. */
  fedLinks: `${PREFIX}fed:links`,
  /** String with a TTL: a nonce already used by a linked site (replay protection). */
  fedNonce: (siteId: string, nonce: string) => `${PREFIX}fed:nonce:${siteId}:${nonce}`,
  /** Hash: site-wide facts (site id, schema version). */
  site: `${PREFIX}site`,
} as const;

/** Approximate cap on the library event stream (XADD MAXLEN ~). */
export const LIBRARY_EVENTS_MAXLEN = 100_000;
