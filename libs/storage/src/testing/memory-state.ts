import type { StoredItem } from '@nondivy/contracts';
import { notFound } from '@nondivy/errors';
import type { LibraryStateStore } from '../library.js';

/**
 * A test double of our own `LibraryStateStore`, kept in memory, for the unit tests of `Library`
 * (never used by a service: production state is `RedisLibraryState` in libs/state, which the
 * black-box suites exercise). It follows that implementation step for step, so a rule the library
 * relies on holds here too:
 * - upload leases with an expiry and a cleanup token; a commit whose lease is gone fails with the
 *   same `LEASE_LOST` error as the Lua script, and ends the lease when it succeeds;
 * - a content-address registry (one entry per SHA-256: blob key, size, reference count, last item);
 *   an upload of bytes already stored adds a reference and puts its own blob in the trash;
 * - deleting an item drops its reference; the last one removes the entry and trashes the blob;
 * - each item has a path name unique in its kind (its file name, else the start of its id added);
 * - every read returns a copy, as Redis returns what it stores, never the stored object itself.
 * Each method is one synchronous step, as each Redis call or script is atomic.
 */
export class MemoryLibraryState implements LibraryStateStore {
  /** leaseId → expiry (ms since the epoch): Redis's `uploads` sorted set. */
  readonly uploads = new Map<string, number>();
  /** leaseId → cleanup token: the `uploadTokens` hash. */
  readonly uploadTokens = new Map<string, string>();
  /** SHA-256 → registry entry: the `blob:<sha>` hashes. */
  readonly blobs = new Map<string, { key: string; size: number; refs: number; item?: string }>();
  /** Blob key → when its deletion is due: the `blobTrash` sorted set. */
  readonly trash = new Map<string, number>();
  private readonly items = new Map<string, StoredItem & { name?: string; nameFor?: string }>();
  /** kind → path name → item id: the index's `name:<kind>` hashes. */
  private readonly names = new Map<string, Map<string, string>>();

  async beginUpload(leaseId: string, token: string, ttlMs: number): Promise<void> {
    this.uploads.set(leaseId, Date.now() + ttlMs);
    this.uploadTokens.set(leaseId, token);
  }

  async setUploadToken(leaseId: string, token: string): Promise<void> {
    this.uploadTokens.set(leaseId, token);
  }

  async renewUpload(leaseId: string, ttlMs: number): Promise<boolean> {
    // ZADD XX CH: only an existing member, and it counts as changed only when its score moves.
    const current = this.uploads.get(leaseId);
    if (current === undefined) return false;
    const next = Date.now() + ttlMs;
    this.uploads.set(leaseId, next);
    return next !== current;
  }

  async endUpload(leaseId: string): Promise<void> {
    this.uploads.delete(leaseId);
    this.uploadTokens.delete(leaseId);
  }

  async expiredUploads(now: number, limit = 100): Promise<{ leaseId: string; token: string | null }[]> {
    return [...this.uploads]
      .filter(([, expiry]) => expiry <= now)
      .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, limit)
      .map(([leaseId]) => ({ leaseId, token: this.uploadTokens.get(leaseId) ?? null }));
  }

  async commitUpload(input: { leaseId: string; candidateKey: string; item: Omit<StoredItem, 'blobKey'> }): Promise<{ blobKey: string; deduped: boolean; path?: string }> {
    // A Redis error reply: a plain Error, not an AppError (the library recognises it by its text).
    if (!this.uploads.delete(input.leaseId)) throw new Error('LEASE_LOST upload lease expired');
    this.uploadTokens.delete(input.leaseId);
    const { item } = input;
    const entry = this.blobs.get(item.sha256);
    let blobKey: string;
    let deduped = false;
    if (entry) {
      entry.refs++;
      deduped = true;
      blobKey = entry.key;
      this.trash.set(input.candidateKey, Date.parse(item.createdAt));
    } else {
      blobKey = input.candidateKey;
      this.blobs.set(item.sha256, { key: blobKey, size: item.size, refs: 1 });
    }
    this.items.set(item.id, { ...structuredClone(item), blobKey });
    this.blobs.get(item.sha256)!.item = item.id;
    this.assignName(item.id);
    return { blobKey, deduped, path: this.copy(this.items.get(item.id))!.path };
  }

  async getItem(id: string): Promise<StoredItem | null> {
    return this.copy(this.items.get(id));
  }

  async updateItem(id: string, changes: Partial<Omit<StoredItem, 'id' | 'sha256' | 'blobKey' | 'size'>>): Promise<boolean> {
    const current = this.items.get(id);
    if (!current) return false;
    const defined = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
    Object.assign(current, structuredClone(defined), { updatedAt: changes.updatedAt ?? new Date().toISOString() });
    // Re-indexing keeps the path name while kind and file name stay the same, else assigns a new one.
    this.assignName(id);
    return true;
  }

  async deleteItem(id: string): Promise<{ blobKey: string; lastReference: boolean }> {
    const item = this.items.get(id);
    if (!item) throw notFound('No such item');
    this.releaseName(id);
    this.items.delete(id);
    const entry = this.blobs.get(item.sha256);
    // HINCRBY on a missing hash starts from 0, so a missing entry counts as the last reference.
    const refs = (entry?.refs ?? 0) - 1;
    if (entry) entry.refs = refs;
    if (refs <= 0) {
      this.blobs.delete(item.sha256);
      this.trash.set(item.blobKey, Date.now());
      return { blobKey: item.blobKey, lastReference: true };
    }
    return { blobKey: item.blobKey, lastReference: false };
  }

  async countDownload(id: string): Promise<void> {
    const item = this.items.get(id);
    if (item) item.downloads++;
  }

  async findByName(kind: string, name: string): Promise<StoredItem | null> {
    const id = this.names.get(kind)?.get(name);
    return id ? this.copy(this.items.get(id)) : null;
  }

  async scanNames(kind: string, cursor: string, count = 500): Promise<{ cursor: string; entries: { name: string; item: StoredItem }[] }> {
    const all = [...(this.names.get(kind) ?? new Map<string, string>())];
    const start = Number(cursor);
    const page = all.slice(start, start + count);
    const next = start + count >= all.length ? '0' : String(start + count);
    const entries = page.flatMap(([name, id]) => {
      const item = this.copy(this.items.get(id));
      return item ? [{ name, item }] : [];
    });
    return { cursor: next, entries };
  }

  async itemsBy(username: string, limit: number): Promise<StoredItem[]> {
    const own = [...this.items.values()].filter((it) => it.uploadedBy === username);
    own.sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt));
    return own.slice(0, limit).map((it) => this.copy(it)!);
  }

  async nameOf(id: string): Promise<string | null> {
    return this.items.get(id)?.name ?? null;
  }

  async findBySha256(sha256: string): Promise<StoredItem | null> {
    const id = this.blobs.get(sha256)?.item;
    const item = id ? this.items.get(id) : undefined;
    return item && item.sha256 === sha256 ? this.copy(item) : null;
  }

  async dueTrash(now: number, limit = 100): Promise<string[]> {
    return [...this.trash]
      .filter(([, due]) => due <= now)
      .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, limit)
      .map(([key]) => key);
  }

  async clearTrash(blobKey: string): Promise<void> {
    this.trash.delete(blobKey);
  }

  /** Counts: items, pending uploads and trash entries (as `RedisLibraryState.counts`). */
  counts(): { items: number; uploads: number; trash: number } {
    return { items: this.items.size, uploads: this.uploads.size, trash: this.trash.size };
  }

  private copy(item: (StoredItem & { name?: string; nameFor?: string }) | undefined): StoredItem | null {
    if (!item) return null;
    const { name, nameFor: _nameFor, ...stored } = item;
    // As the Redis store reads it: the path name comes back as the item's FTP location.
    return { ...structuredClone(stored), ...(name ? { path: `/library/${item.kind}/${name}` } : {}) };
  }

  private releaseName(id: string): void {
    const item = this.items.get(id);
    if (!item?.name || !item.nameFor) return;
    const map = this.names.get(item.nameFor.slice(0, item.nameFor.indexOf('/')));
    if (map?.get(item.name) === id) map.delete(item.name);
  }

  /** `nm_assign` of search-index.ts: keep a name still valid and free, else take the first free candidate. */
  private assignName(id: string): void {
    const item = this.items.get(id)!;
    const want = `${item.kind}/${item.filename}`;
    let map = this.names.get(item.kind);
    if (!map) this.names.set(item.kind, (map = new Map()));
    if (item.name && item.nameFor === want) {
      const holder = map.get(item.name);
      if (holder === id) return;
      if (holder === undefined) {
        map.set(item.name, id);
        return;
      }
    }
    this.releaseName(id);
    const dot = item.filename.lastIndexOf('.');
    const [stem, ext] = dot > 0 && dot < item.filename.length - 1 ? [item.filename.slice(0, dot), item.filename.slice(dot)] : [item.filename, ''];
    for (const candidate of [item.filename, `${stem} (${id.slice(0, 6)})${ext}`, `${stem} (${id})${ext}`]) {
      if (!map.has(candidate)) {
        map.set(candidate, id);
        item.name = candidate;
        item.nameFor = want;
        return;
      }
    }
  }
}
