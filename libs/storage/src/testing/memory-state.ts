import type { StoredItem } from '@nondivy/contracts';
import { conflict, notFound } from '@nondivy/errors';
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
 * - each item has a path name unique in its folder of its kind (its file name, else the start of
 *   its id added, else its whole id; never the name of a subfolder there), kept while its kind,
 *   folder and file name stay the same (`nm_assign` of search-index.ts);
 * - folders as the index keeps them (`fd_hold`, `fd_free`): each folder but the kind's root has
 *   holds (its items and made folders, itself and below) and an item count, exists while it has
 *   holds and is then listed in its parent; a folder on the way to an item's folder may not be the
 *   name of a file in its parent (a commit fails with `FOLDER_IS_FILE` as the Lua script does, an
 *   update with a conflict); made folders stay until removed; a folder move keeps path names;
 * - replacing an item's content checks the lease and the item's `updatedAt`, deduplicates the new
 *   bytes and trashes the old ones when nothing else references them;
 * - every read returns a copy, as Redis returns what it stores, never the stored object itself.
 * Each method is one synchronous step, as each Redis call or script is atomic. The index's folder
 * sets (the items directly in a folder, and at or below it) are read off the items here: every
 * item is indexed as it is stored, so they hold the same ids.
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
  /** `kind/` or `kind/folder/` → path name → item id: the index's `name:` hashes (`nm_map`). */
  private readonly names = new Map<string, Map<string, string>>();
  /** kind → folder → holds: the index's `fh:<kind>` hashes. */
  private readonly holds = new Map<string, Map<string, number>>();
  /** kind → folder → items in it and below: the index's `fc:<kind>` hashes. */
  private readonly itemCounts = new Map<string, Map<string, number>>();
  /** `kind/folder` (`kind/` for the root) → names of the folders directly under it: the `d:` sets. */
  private readonly subdirs = new Map<string, Set<string>>();
  /** kind → folders made (FTP MKD) and not removed: `nd:folders:made:<kind>`. */
  private readonly made = new Map<string, Set<string>>();

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
    const { item } = input;
    const folder = item.folder ?? '';
    // Redis error replies: plain Errors, not AppErrors (the library recognises them by their text).
    if (!this.folderFree(item.kind, folder)) throw new Error(`FOLDER_IS_FILE a file has the name of a folder on the way to ${folder}`);
    if (!this.uploads.delete(input.leaseId)) throw new Error('LEASE_LOST upload lease expired');
    this.uploadTokens.delete(input.leaseId);
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
    this.items.set(item.id, { ...structuredClone(item), folder, blobKey });
    this.blobs.get(item.sha256)!.item = item.id;
    this.indexAdd(item.id);
    return { blobKey, deduped, path: this.copy(this.items.get(item.id))!.path };
  }

  async getItem(id: string): Promise<StoredItem | null> {
    return this.copy(this.items.get(id));
  }

  async updateItem(id: string, changes: Partial<Omit<StoredItem, 'id' | 'sha256' | 'blobKey' | 'size'>>): Promise<boolean> {
    const current = this.items.get(id);
    if (!current) return false;
    const defined = Object.fromEntries(Object.entries(changes).filter(([, v]) => v !== undefined));
    const next = { ...current, ...defined };
    // Checked before any change, as UPDATE_ITEM answers -2 and RedisLibraryState throws.
    if (!this.folderFree(next.kind, next.folder ?? '')) throw conflict(`A file has the name of a folder on the way to "${next.folder ?? ''}"`);
    // ix_remove, the new fields, ix_add: the path name stays while kind, folder and file name do.
    this.indexRemove(id);
    Object.assign(current, structuredClone(defined), { updatedAt: changes.updatedAt ?? new Date().toISOString() });
    this.indexAdd(id);
    return true;
  }

  async deleteItem(id: string): Promise<{ blobKey: string; lastReference: boolean }> {
    const item = this.items.get(id);
    if (!item) throw notFound('No such item');
    this.indexRemove(id);
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

  async findByName(kind: string, folder: string, name: string): Promise<StoredItem | null> {
    const id = this.names.get(nameMap(kind, folder))?.get(name);
    return id ? this.copy(this.items.get(id)) : null;
  }

  async scanNames(kind: string, folder: string, cursor: string, count = 500): Promise<{ cursor: string; entries: { name: string; item: StoredItem }[] }> {
    const all = [...(this.names.get(nameMap(kind, folder)) ?? new Map<string, string>())];
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
    // ZREVRANGE of the uploader's set: by creation time, newest first; equal times by id, descending.
    own.sort((a, b) => Date.parse(b.createdAt) - Date.parse(a.createdAt) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    return own.slice(0, limit).map((it) => this.copy(it)!);
  }

  async nameOf(id: string): Promise<string | null> {
    return this.items.get(id)?.name ?? null;
  }

  async folderExists(kind: string, folder: string): Promise<boolean> {
    return folder === '' || this.holds.get(kind)?.has(folder) === true;
  }

  async folderItemCount(kind: string, folder: string): Promise<number> {
    // The root: the kind's facet count, every item of the kind.
    if (folder === '') return [...this.items.values()].filter((it) => it.kind === kind).length;
    return this.itemCounts.get(kind)?.get(folder) ?? 0;
  }

  async subfolders(kind: string, folder: string, after: string | null, limit: number): Promise<{ folders: { name: string; items: number }[]; more: boolean }> {
    // ZRANGEBYLEX: byte order of the UTF-8 names, which is code point order (not UTF-16's `<`).
    const names = [...(this.subdirs.get(`${kind}/${folder}`) ?? [])]
      .sort(byBytes)
      .filter((n) => after === null || byBytes(n, after) > 0)
      .slice(0, limit + 1);
    const shown = names.slice(0, limit);
    const counts = this.itemCounts.get(kind);
    return { folders: shown.map((name) => ({ name, items: counts?.get(folder === '' ? name : `${folder}/${name}`) ?? 0 })), more: names.length > limit };
  }

  async ownersUnder(kind: string, folder: string): Promise<string[]> {
    // OWNERS_UNDER reads the `u:` set, by id; the root has none (no item is listed under it).
    const out: string[] = [];
    if (folder === '') return out;
    for (const id of this.idsUnder(kind, folder)) {
      const owner = this.items.get(id)!.uploadedBy;
      if (!out.includes(owner)) out.push(owner);
    }
    return out;
  }

  async makeFolder(kind: string, folder: string): Promise<'made' | 'exists' | 'file'> {
    if (this.holds.get(kind)?.has(folder)) return 'exists';
    if (!this.folderFree(kind, folder)) return 'file';
    setOf(this.made, kind).add(folder);
    this.hold(kind, folder, 1, 0);
    return 'made';
  }

  async removeFolder(kind: string, folder: string): Promise<'removed' | 'missing' | 'not_empty'> {
    const holds = this.holds.get(kind)?.get(folder);
    if (holds === undefined) return 'missing';
    if (holds !== 1 || !this.made.get(kind)?.has(folder)) return 'not_empty';
    this.made.get(kind)!.delete(folder);
    this.hold(kind, folder, -1, 0);
    return 'removed';
  }

  async moveFolder(kind: string, from: string, to: string): Promise<{ moved: number } | { refused: 'missing' | 'exists' | 'file' | 'inside' }> {
    const holds = this.holds.get(kind)?.get(from) ?? 0;
    if (holds === 0) return { refused: 'missing' };
    if (to.startsWith(`${from}/`)) return { refused: 'inside' };
    if (this.holds.get(kind)?.has(to)) return { refused: 'exists' };
    const toParent = parentOf(to);
    if (this.names.get(nameMap(kind, toParent))?.has(leafOf(to))) return { refused: 'exists' };
    if (!this.folderFree(kind, toParent)) return { refused: 'file' };
    const items = this.itemCounts.get(kind)?.get(from) ?? 0;
    const ids = this.idsUnder(kind, from);
    // The folders above the old place lose everything below it.
    const fromParent = parentOf(from);
    this.subdirs.get(`${kind}/${fromParent}`)?.delete(leafOf(from));
    this.hold(kind, fromParent, -holds, -items);
    // Every folder at and below the old place, and its keys, moves.
    const queue = [from];
    for (let i = 0; i < queue.length; i++) {
      const old = queue[i]!;
      for (const child of [...(this.subdirs.get(`${kind}/${old}`) ?? [])].sort(byBytes)) queue.push(`${old}/${child}`);
      const moved = to + old.slice(from.length);
      rename(this.names, nameMap(kind, old), nameMap(kind, moved));
      rename(this.subdirs, `${kind}/${old}`, `${kind}/${moved}`);
      for (const counts of [this.holds.get(kind), this.itemCounts.get(kind)]) {
        const v = counts?.get(old);
        if (v !== undefined) {
          counts!.delete(old);
          counts!.set(moved, v);
        }
      }
      const made = this.made.get(kind);
      if (made?.delete(old)) made.add(moved);
    }
    // The folders above the new place gain it.
    setOf(this.subdirs, `${kind}/${toParent}`).add(leafOf(to));
    this.hold(kind, toParent, holds, items);
    const at = new Date().toISOString();
    for (const id of ids) {
      const item = this.items.get(id)!;
      const moved = to + (item.folder ?? '').slice(from.length);
      Object.assign(item, { folder: moved, updatedAt: at, nameFor: `${kind}/${moved}/${item.filename}` });
    }
    return { moved: ids.length };
  }

  async replaceContent(input: { leaseId: string; candidateKey: string; expected: StoredItem; sha256: string; size: number; contentType: string }): Promise<{ blobKey: string; deduped: boolean; freed: string | null } | null> {
    const item = this.items.get(input.expected.id);
    const at = new Date().toISOString();
    const now = Date.now();
    // Nothing done in either case: the lease stays for the caller to discard.
    if (!item) return null;
    if (item.updatedAt !== input.expected.updatedAt) return null;
    if (!this.uploads.delete(input.leaseId)) throw new Error('LEASE_LOST upload lease expired');
    this.uploadTokens.delete(input.leaseId);
    const entry = this.blobs.get(input.sha256);
    let blobKey: string;
    let deduped = false;
    if (entry) {
      entry.refs++;
      deduped = true;
      blobKey = entry.key;
      this.trash.set(input.candidateKey, now);
    } else {
      blobKey = input.candidateKey;
      this.blobs.set(input.sha256, { key: blobKey, size: input.size, refs: 1 });
    }
    this.blobs.get(input.sha256)!.item = item.id;
    let freed: string | null = null;
    const old = this.blobs.get(item.sha256);
    // HINCRBY on a missing entry starts from 0: it is then the last reference too.
    const refs = (old?.refs ?? 0) - 1;
    if (old) old.refs = refs;
    if (refs <= 0) {
      this.blobs.delete(item.sha256);
      this.trash.set(item.blobKey, now);
      freed = item.blobKey;
    }
    this.indexRemove(item.id);
    Object.assign(item, { sha256: input.sha256, size: input.size, contentType: input.contentType, meta: {}, updatedAt: at, blobKey });
    this.indexAdd(item.id);
    return { blobKey, deduped, freed };
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

  /**
   * The folders of a kind as kept (holds and item counts per folder), and as they should be from
   * the items and made folders alone: equal unless a step left the counts wrong.
   */
  folderCounts(kind: string): { kept: Record<string, [number, number]>; expected: Record<string, [number, number]> } {
    const kept: Record<string, [number, number]> = {};
    for (const [folder, h] of this.holds.get(kind) ?? []) kept[folder] = [h, this.itemCounts.get(kind)?.get(folder) ?? 0];
    const expected: Record<string, [number, number]> = {};
    const add = (folder: string, items: number) => {
      for (let f = folder; f !== ''; f = parentOf(f)) {
        const [h, n] = expected[f] ?? [0, 0];
        expected[f] = [h + 1, n + items];
      }
    };
    for (const it of this.items.values()) if (it.kind === kind) add(it.folder ?? '', 1);
    for (const folder of this.made.get(kind) ?? []) add(folder, 0);
    return { kept: sortKeys(kept), expected: sortKeys(expected) };
  }

  private copy(item: (StoredItem & { name?: string; nameFor?: string }) | undefined): StoredItem | null {
    if (!item) return null;
    const { name, nameFor: _nameFor, ...stored } = item;
    // As the Redis store reads it: the path name comes back as the item's FTP location.
    const folder = item.folder ?? '';
    return { ...structuredClone(stored), folder, ...(name ? { path: `/library/${item.kind}/${folder === '' ? '' : `${folder}/`}${name}` } : {}) };
  }

  /** The ids of the items of `kind` in `folder` or below it (the index's `u:` set), by id. */
  private idsUnder(kind: string, folder: string): string[] {
    return [...this.items.values()]
      .filter((it) => it.kind === kind && ((it.folder ?? '') === folder || (it.folder ?? '').startsWith(`${folder}/`)))
      .map((it) => it.id)
      .sort(byBytes);
  }

  /** `fd_free`: the folder exists, or no folder on the way to it is the name of an item in its parent. */
  private folderFree(kind: string, folder: string): boolean {
    for (let f = folder; f !== ''; f = parentOf(f)) {
      if (this.holds.get(kind)?.has(f)) return true;
      if (this.names.get(nameMap(kind, parentOf(f)))?.has(leafOf(f))) return false;
    }
    return true;
  }

  /** `fd_hold`: adds holds (and items) to a folder and every folder above it but the root. */
  private hold(kind: string, folder: string, delta: number, items: number): void {
    const holds = mapOf(this.holds, kind);
    const counts = mapOf(this.itemCounts, kind);
    for (let f = folder; f !== ''; f = parentOf(f)) {
      const n = (holds.get(f) ?? 0) + delta;
      holds.set(f, n);
      if (items !== 0) {
        const c = (counts.get(f) ?? 0) + items;
        if (c <= 0) counts.delete(f);
        else counts.set(f, c);
      }
      const parent = parentOf(f);
      if (n <= 0) {
        holds.delete(f);
        counts.delete(f);
        this.subdirs.get(`${kind}/${parent}`)?.delete(leafOf(f));
      } else if (delta > 0 && n === delta) {
        setOf(this.subdirs, `${kind}/${parent}`).add(leafOf(f));
      }
    }
  }

  /** `ix_add`: the item joins its folder (`fd_add_item`), then gets its path name (`nm_assign`). */
  private indexAdd(id: string): void {
    const item = this.items.get(id)!;
    this.hold(item.kind, item.folder ?? '', 1, 1);
    this.assignName(id);
  }

  /** `ix_remove`: the item leaves its folder (`fd_remove_item`); its path name stays (see `assignName`). */
  private indexRemove(id: string): void {
    const item = this.items.get(id)!;
    this.hold(item.kind, item.folder ?? '', -1, -1);
  }

  /** `nm_release`: the name leaves the map of the folder it was given in (read from `nameFor`). */
  private releaseName(id: string): void {
    const item = this.items.get(id);
    if (!item?.name || !item.nameFor) return;
    const map = this.names.get(`${item.nameFor.slice(0, item.nameFor.lastIndexOf('/'))}/`);
    if (map?.get(item.name) === id) map.delete(item.name);
  }

  /** `nm_assign`: keep a name still valid and free, else take the first free candidate that is no subfolder's name. */
  private assignName(id: string): void {
    const item = this.items.get(id)!;
    const folder = item.folder ?? '';
    const want = `${folder === '' ? item.kind : `${item.kind}/${folder}`}/${item.filename}`;
    const map = mapOf(this.names, nameMap(item.kind, folder));
    if (item.name && item.nameFor === want) {
      const holder = map.get(item.name);
      if (holder === id) return;
      if (holder === undefined) {
        map.set(item.name, id);
        return;
      }
    }
    this.releaseName(id);
    const subdirs = this.subdirs.get(`${item.kind}/${folder}`);
    // Lua's '^(.+)(%.[^.]+)$': a stem of at least one character and an extension with no other dot.
    const dot = item.filename.lastIndexOf('.');
    const [stem, ext] = dot > 0 && dot < item.filename.length - 1 ? [item.filename.slice(0, dot), item.filename.slice(dot)] : [item.filename, ''];
    for (const candidate of [item.filename, `${stem} (${id.slice(0, 6)})${ext}`, `${stem} (${id})${ext}`]) {
      if (!subdirs?.has(candidate) && !map.has(candidate)) {
        map.set(candidate, id);
        item.name = candidate;
        item.nameFor = want;
        return;
      }
    }
  }
}

/** The key of a folder's path names (`nm_map`): `kind/` at the root, else `kind/folder/`. */
const nameMap = (kind: string, folder: string) => (folder === '' ? `${kind}/` : `${kind}/${folder}/`);
/** `fd_parent` and `fd_leaf`: `A/B/C` → `A/B` and `C`; a top folder's parent is the root, `''`. */
const parentOf = (folder: string) => folder.slice(0, Math.max(0, folder.lastIndexOf('/')));
const leafOf = (folder: string) => folder.slice(folder.lastIndexOf('/') + 1);
/** Byte order of the UTF-8 forms (Redis's order of members with equal scores, and ZRANGEBYLEX's). */
const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function mapOf<V>(maps: Map<string, Map<string, V>>, key: string): Map<string, V> {
  let map = maps.get(key);
  if (!map) maps.set(key, (map = new Map()));
  return map;
}

function setOf(sets: Map<string, Set<string>>, key: string): Set<string> {
  let set = sets.get(key);
  if (!set) sets.set(key, (set = new Set()));
  return set;
}

/** RENAME of a key that exists (a collection with members): the new key takes its place. */
function rename<V extends Map<string, unknown> | Set<string>>(keys: Map<string, V>, from: string, to: string): void {
  const value = keys.get(from);
  keys.delete(from);
  if (value && value.size > 0) keys.set(to, value);
}

function sortKeys<V>(record: Record<string, V>): Record<string, V> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => byBytes(a, b)));
}
