import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { publicItem, type Item, type ItemKind, type ItemPatch, type StoredItem } from '@nondivy/contracts';
import { AppError, badInput, conflict, forbidden, notFound, tooLarge } from '@nondivy/errors';
import type { Logger } from '@nondivy/log';
import { canOpenFiles, type BlobStore, type ByteRange } from './blob-store.js';
import { guessKind, resolveContentType } from './content-types.js';
import { requireAcceptedFolder, safeFilename, titleFromFilename } from './filenames.js';
import { hashAndWrite, openUploadHash } from './hash.js';
import type { ResumableHash } from './resumable-hash.js';
import { EmptyBody, FileBody, StreamBody, type ItemBody } from './item-body.js';

/** Who is acting: front doors resolve their login into this. `null` is an anonymous guest. */
export interface Actor {
  username: string;
  role: 'admin' | 'member';
}

/**
 * The state the library needs, implemented over Redis by `RedisLibraryState` in libs/state. Each
 * method is one atomic step; see there for the guarantees.
 */
export interface LibraryStateStore {
  beginUpload(leaseId: string, token: string, ttlMs: number): Promise<void>;
  setUploadToken(leaseId: string, token: string): Promise<void>;
  renewUpload(leaseId: string, ttlMs: number): Promise<boolean>;
  endUpload(leaseId: string): Promise<void>;
  expiredUploads(now: number, limit?: number): Promise<{ leaseId: string; token: string | null }[]>;
  /** `path`: the item's FTP location, from the path name the commit gave it (see `Item.path`). */
  commitUpload(input: { leaseId: string; candidateKey: string; item: Omit<StoredItem, 'blobKey'> }): Promise<{ blobKey: string; deduped: boolean; path?: string }>;
  getItem(id: string): Promise<StoredItem | null>;
  updateItem(id: string, changes: Partial<Omit<StoredItem, 'id' | 'sha256' | 'blobKey' | 'size'>>): Promise<boolean>;
  deleteItem(id: string): Promise<{ blobKey: string; lastReference: boolean }>;
  countDownload(id: string): Promise<void>;
  findByName(kind: string, folder: string, name: string): Promise<StoredItem | null>;
  scanNames(kind: string, folder: string, cursor: string, count?: number): Promise<{ cursor: string; entries: { name: string; item: StoredItem }[] }>;
  nameOf(id: string): Promise<string | null>;
  folderExists(kind: string, folder: string): Promise<boolean>;
  folderItemCount(kind: string, folder: string): Promise<number>;
  subfolders(kind: string, folder: string, after: string | null, limit: number): Promise<{ folders: { name: string; items: number }[]; more: boolean }>;
  ownersUnder(kind: string, folder: string): Promise<string[]>;
  makeFolder(kind: string, folder: string): Promise<'made' | 'exists' | 'file'>;
  removeFolder(kind: string, folder: string): Promise<'removed' | 'missing' | 'not_empty'>;
  moveFolder(kind: string, from: string, to: string): Promise<{ moved: number } | { refused: 'missing' | 'exists' | 'file' | 'inside' }>;
  /** Null when the item is gone or changed since `expected` was read; nothing is done then. */
  replaceContent(input: { leaseId: string; candidateKey: string; expected: StoredItem; sha256: string; size: number; contentType: string }): Promise<{ blobKey: string; deduped: boolean; freed: string | null } | null>;
  itemsBy(username: string, limit: number): Promise<StoredItem[]>;
  findBySha256(sha256: string): Promise<StoredItem | null>;
  dueTrash(now: number, limit?: number): Promise<string[]>;
  clearTrash(blobKey: string): Promise<void>;
}

/** An item by its path name in its folder of its kind (see `Library.findByName`). */
export interface ItemName {
  kind: ItemKind;
  /** `''`: the kind's root. */
  folder: string;
  name: string;
}

/** A folder of a kind in a listing: its name, how many items are in it or below. */
export interface FolderInfo {
  name: string;
  items: number;
}

/** An item and the way to its bytes: what `Library.read` gives a front door. */
export interface ItemContent {
  readonly item: Item;
  /** Opens the item's bytes, whole (default) or one inclusive range within them; `not_found` when the blob is gone. */
  open(range?: ByteRange): Promise<ItemBody>;
}

/** What an uploader says about a file; everything but the bytes is optional. */
export interface NewItemInput {
  filename?: string;
  contentType?: string;
  title?: string;
  kind?: ItemKind;
  tags?: string[];
  description?: string;
  /** The folder within the kind (`A/B`, `''` the root): checked by `requireAcceptedFolder`. */
  folder?: string;
}

/** Bytes that are stored and hashed but not yet an item. Commit or discard it. */
export interface StagedUpload {
  readonly sha256: string;
  readonly size: number;
  commit(input: NewItemInput, actor: Actor | null): Promise<Item>;
  /**
   * Makes these bytes the new content of an existing item (its uploader or an admin): same id, folder,
   * tags and description, `item.updated`; its old bytes are deleted when nothing else uses them.
   */
  replace(itemId: string, actor: Actor | null): Promise<Item>;
  discard(): Promise<void>;
}

export interface LibraryOptions {
  blobs: BlobStore;
  state: LibraryStateStore;
  log: Logger;
  maxUploadBytes: number;
  /** How long an upload's lease lasts without renewal; an upload silent for longer is swept. */
  uploadLeaseMs?: number;
}

/** A new random item id: 22 url-safe characters, 128 bits. */
export const newItemId = () => randomBytes(16).toString('base64url');

const isLeaseLost = (err: unknown) => err instanceof Error && /LEASE_LOST/.test(err.message) && !(err instanceof AppError);
const isFolderIsFile = (err: unknown) => err instanceof Error && /FOLDER_IS_FILE/.test(err.message) && !(err instanceof AppError);

/**
 * Library operations shared by every front door (HTTP gateway, FTP): ingest a stream into a new
 * item, read an item's bytes (whole or a range), list, update and remove. Knows nothing of HTTP or FTP.
 *
 * An upload is recorded as a lease in Redis before its first byte is written; the bytes are hashed
 * (SHA-256) and counted as they stream into a fresh blob; the item, its reference to the blob and its
 * change event are created in one atomic step only after the blob is durable. Equal bytes are stored
 * once: a second upload of the same content references the first blob and its own copy is deleted.
 * If the process dies mid-upload, the lease expires and `sweep` (run at start and periodically by
 * every process that owns a Library) removes what was written.
 */
export class Library {
  readonly blobs: BlobStore;
  readonly maxUploadBytes: number;
  private readonly state: LibraryStateStore;
  private readonly log: Logger;
  private readonly leaseMs: number;

  constructor(options: LibraryOptions) {
    this.blobs = options.blobs;
    this.state = options.state;
    this.log = options.log;
    this.maxUploadBytes = options.maxUploadBytes;
    this.leaseMs = options.uploadLeaseMs ?? 30_000;
  }

  /**
   * Streams `source` into the blob store, hashing as it goes, and returns the staged bytes. Fails
   * with `too_large` past `maxBytes`, and cleans up on any failure (including `source` erroring
   * because its client went away).
   */
  async stage(source: AsyncIterable<Buffer> | Readable, options: { maxBytes?: number } = {}): Promise<StagedUpload> {
    const maxBytes = Math.min(options.maxBytes ?? this.maxUploadBytes, this.maxUploadBytes);
    const leaseId = randomBytes(12).toString('base64url');
    const writer = this.blobs.begin({ onToken: (token) => this.state.setUploadToken(leaseId, token) });
    await this.state.beginUpload(leaseId, writer.token, this.leaseMs);
    const renew = setInterval(() => {
      this.state.renewUpload(leaseId, this.leaseMs).catch((err) => this.log.warn({ err, leaseId }, 'could not renew upload lease'));
    }, Math.max(250, Math.floor(this.leaseMs / 3)));
    renew.unref();

    const abandon = async (reason: unknown) => {
      clearInterval(renew);
      try {
        await writer.abort();
        await this.state.endUpload(leaseId);
      } catch (err) {
        // The lease stays; the sweeper finishes the job once it expires.
        this.log.warn({ err, leaseId }, 'upload cleanup deferred to the sweeper');
      }
      this.log.info({ leaseId, reason: reason instanceof Error ? reason.message : String(reason) }, 'upload abandoned');
    };

    let size = 0;
    let sha256: string;
    let hash: ResumableHash | null = null;
    try {
      // Hashed beside this thread (see hash.ts): the digest is ready by the time the blob is durable.
      hash = await openUploadHash(this.log);
      for await (const chunk of source as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > maxBytes) throw tooLarge(`The file is larger than the limit of ${maxBytes} bytes`);
        await hashAndWrite(hash, (c) => writer.write(c), chunk);
      }
      const digest = hash.digest();
      digest.catch(() => undefined);
      await writer.finish();
      sha256 = await digest;
    } catch (err) {
      hash?.close();
      await abandon(err);
      throw err;
    }

    let settled = false;
    const staged: StagedUpload = {
      sha256,
      size,
      commit: async (input, actor) => {
        if (settled) throw new Error('staged upload already settled');
        settled = true;
        try {
          return await this.commit(leaseId, writer.key, sha256, size, input, actor);
        } catch (err) {
          if (err instanceof AppError && err.kind === 'unavailable') {
            // The outcome is unknown (Redis went away mid-call): keep the bytes. If the commit did not
            // happen, the lease expires and the sweeper removes them; if it did, they are referenced.
            clearInterval(renew);
            throw err;
          }
          await abandon(err);
          throw err;
        } finally {
          clearInterval(renew);
        }
      },
      replace: async (itemId, actor) => {
        if (settled) throw new Error('staged upload already settled');
        settled = true;
        try {
          return await this.replaceContent(leaseId, writer.key, sha256, size, itemId, actor);
        } catch (err) {
          if (err instanceof AppError && err.kind === 'unavailable') {
            clearInterval(renew);
            throw err;
          }
          await abandon(err);
          throw err;
        } finally {
          clearInterval(renew);
        }
      },
      discard: async () => {
        if (settled) return;
        settled = true;
        await abandon('discarded');
      },
    };
    return staged;
  }

  private async commit(leaseId: string, key: string, sha256: string, size: number, input: NewItemInput, actor: Actor | null): Promise<Item> {
    const filename = safeFilename(input.filename);
    const folder = requireAcceptedFolder(input.folder ?? '');
    const contentType = resolveContentType(input.contentType, filename);
    const now = new Date().toISOString();
    const item: Omit<StoredItem, 'blobKey'> = {
      id: newItemId(),
      title: input.title?.trim() || titleFromFilename(filename),
      kind: input.kind ?? guessKind(contentType, filename),
      folder,
      tags: input.tags ?? [],
      description: input.description ?? '',
      filename,
      contentType,
      size,
      sha256,
      createdAt: now,
      updatedAt: now,
      modifiedAt: null,
      uploadedBy: actor?.username ?? 'guest',
      downloads: 0,
      meta: {},
    };
    let result: { blobKey: string; deduped: boolean; path?: string };
    try {
      result = await this.state.commitUpload({ leaseId, candidateKey: key, item });
    } catch (err) {
      if (isLeaseLost(err)) throw new AppError('unavailable', 'The upload took too long to commit; please retry', { cause: err });
      if (isFolderIsFile(err)) throw conflict(`A file has the name of a folder on the way to "${folder}"`);
      throw err;
    }
    if (result.deduped) {
      // Equal bytes were already stored: ours are redundant. The trash entry covers a crash here.
      try {
        await this.blobs.remove(key);
        await this.state.clearTrash(key);
      } catch (err) {
        this.log.warn({ err, id: item.id }, 'duplicate blob left for the sweeper');
      }
    }
    this.log.info({ id: item.id, size, sha256, deduped: result.deduped, by: item.uploadedBy }, 'item created');
    return publicItem({ ...item, blobKey: result.blobKey, ...(result.path ? { path: result.path } : {}) });
  }

  private async replaceContent(leaseId: string, key: string, sha256: string, size: number, itemId: string, actor: Actor | null): Promise<Item> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await this.stored(itemId);
      this.authorize(current, actor);
      if (size > this.maxUploadBytes) throw tooLarge(`The file is larger than the limit of ${this.maxUploadBytes} bytes`);
      let result: Awaited<ReturnType<LibraryStateStore['replaceContent']>>;
      try {
        result = await this.state.replaceContent({ leaseId, candidateKey: key, expected: current, sha256, size, contentType: resolveContentType(undefined, current.filename) });
      } catch (err) {
        if (isLeaseLost(err)) throw new AppError('unavailable', 'The upload took too long to commit; please retry', { cause: err });
        throw err;
      }
      if (!result) continue; // changed meanwhile (or deleted: `stored` says so on the next round)
      if (result.deduped) await this.deleteBlob(key);
      if (result.freed) await this.deleteBlob(result.freed);
      this.log.info({ id: itemId, size, sha256, deduped: result.deduped, by: actor?.username }, 'item content replaced');
      return this.get(itemId);
    }
    throw new AppError('unavailable', 'The item changed too often while its content was replaced; please retry');
  }

  /**
   * Commits bytes staged and hashed elsewhere (a resumable upload, see resumable.ts) as a new item,
   * through the same commit as `stage` (events, dedupe, index). The sealed blob is covered by an
   * upload lease before `seal` makes it exist, so if this process dies between the two steps the
   * sweeper removes it; on any other failure it is removed here.
   */
  async commitSealed(sealed: { key: string; token: string; sha256: string; size: number; seal: () => Promise<void> }, input: NewItemInput, actor: Actor | null): Promise<Item> {
    if (sealed.size > this.maxUploadBytes) throw tooLarge(`The file is larger than the limit of ${this.maxUploadBytes} bytes`);
    const leaseId = randomBytes(12).toString('base64url');
    await this.state.beginUpload(leaseId, sealed.token, this.leaseMs);
    const renew = setInterval(() => {
      this.state.renewUpload(leaseId, this.leaseMs).catch((err) => this.log.warn({ err, leaseId }, 'could not renew upload lease'));
    }, Math.max(250, Math.floor(this.leaseMs / 3)));
    renew.unref();
    try {
      await sealed.seal();
      return await this.commit(leaseId, sealed.key, sealed.sha256, sealed.size, input, actor);
    } catch (err) {
      // Unknown outcome (Redis went away mid-commit): the lease decides, as in `stage`.
      if (!(err instanceof AppError && err.kind === 'unavailable')) {
        try {
          await this.blobs.discard(sealed.token);
          await this.state.endUpload(leaseId);
        } catch (e) {
          this.log.warn({ err: e, leaseId }, 'upload cleanup deferred to the sweeper');
        }
      }
      throw err;
    } finally {
      clearInterval(renew);
    }
  }

  /** Stages and commits in one go (for front doors that know the metadata before the bytes). */
  async ingest(source: AsyncIterable<Buffer> | Readable, input: NewItemInput, actor: Actor | null, options: { maxBytes?: number } = {}): Promise<Item> {
    const staged = await this.stage(source, options);
    return staged.commit(input, actor);
  }

  private async stored(id: string): Promise<StoredItem> {
    const item = await this.state.getItem(id);
    if (!item) throw notFound('No such item');
    return item;
  }

  async get(id: string): Promise<Item> {
    return publicItem(await this.stored(id));
  }

  /**
   * The one way to an item's bytes, for every front door and every driver: the item, read from the
   * state once, and `open(range)` for its bytes (whole, or one inclusive range; several in turn for
   * a multipart answer). The range is chosen after the read because it depends on the item (its
   * size, its ETag, an FTP restart offset). `open` resolves only once the blob is open, so a door
   * can still answer "not found" cleanly if the item was deleted a moment ago, and the body it
   * gives sends itself (see `ItemBody`). `ref` is an id, or a kind and path name (see `findByName`).
   */
  async read(ref: string | ItemName): Promise<ItemContent> {
    const stored = typeof ref === 'string' ? await this.state.getItem(ref) : await this.state.findByName(ref.kind, ref.folder, ref.name);
    if (!stored) throw notFound('No such item');
    const { blobKey, size } = stored;
    const blobs = this.blobs;
    return {
      item: publicItem(stored),
      async open(range = { start: 0, end: size - 1 }) {
        if (range.start < 0 || range.end >= size || range.end < range.start - 1) throw new RangeError(`bad range ${range.start}-${range.end} of ${size}`);
        if (range.end < range.start) return new EmptyBody(range);
        if (canOpenFiles(blobs)) return new FileBody(await blobs.openFile(blobKey), range);
        return new StreamBody(await blobs.read(blobKey, range), range);
      },
    };
  }

  /**
   * The item whose path name in `folder` of `kind` is `name`. Every item has such a name, unique in
   * its folder and stable while its kind, folder and file name stay the same: its file name when that
   * is free, else the file name with the start of its id added (e.g. `Dune (x3Fq9a).epub`).
   */
  async findByName(kind: ItemKind, folder: string, name: string): Promise<Item | null> {
    const item = await this.state.findByName(kind, folder, name);
    return item ? publicItem(item) : null;
  }

  /** An item of this library with exactly these bytes, if any (to serve our own copy). */
  async findBySha256(sha256: string): Promise<Item | null> {
    const item = await this.state.findBySha256(sha256);
    return item ? publicItem(item) : null;
  }

  /** The path name of an item in its folder (see `findByName`). */
  nameOf(id: string): Promise<string | null> {
    return this.state.nameOf(id);
  }

  /** The items directly in `folder` of `kind` with their path names, a page at a time, in no particular order. */
  async *listFolder(kind: ItemKind, folder: string, pageSize = 500): AsyncGenerator<{ name: string; item: Item }[]> {
    let cursor = '0';
    do {
      const page = await this.state.scanNames(kind, folder, cursor, pageSize);
      cursor = page.cursor;
      if (page.entries.length) yield page.entries.map(({ name, item }) => ({ name, item: publicItem(item) }));
    } while (cursor !== '0');
  }

  /** Whether `folder` of `kind` exists: it holds items or made folders, or was made (the root always). */
  folderExists(kind: ItemKind, folder: string): Promise<boolean> {
    return this.state.folderExists(kind, folder);
  }

  /** How many items are in `folder` of `kind` or below it. */
  folderItemCount(kind: ItemKind, folder: string): Promise<number> {
    return this.state.folderItemCount(kind, folder);
  }

  /** The folders directly under `folder` of `kind`, by name, after `after`; `more` when others follow. */
  subfolders(kind: ItemKind, folder: string, after: string | null, limit: number): Promise<{ folders: FolderInfo[]; more: boolean }> {
    return this.state.subfolders(kind, folder, after, limit);
  }

  /** Every folder directly under `folder` of `kind`, a page at a time, by name. */
  async *listSubfolders(kind: ItemKind, folder: string, pageSize = 500): AsyncGenerator<FolderInfo[]> {
    let after: string | null = null;
    for (;;) {
      const page = await this.state.subfolders(kind, folder, after, pageSize);
      if (page.folders.length) yield page.folders;
      if (!page.more) return;
      after = page.folders[page.folders.length - 1]!.name;
    }
  }

  /** Makes an empty folder (members), which stays until `removeFolder`. */
  async makeFolder(kind: ItemKind, folder: string, actor: Actor | null): Promise<void> {
    if (!actor) throw new AppError('unauthorized', 'Log in to make folders');
    const path = requireAcceptedFolder(folder);
    if (path === '') throw conflict('The kind\'s folder exists already');
    const res = await this.state.makeFolder(kind, path);
    if (res === 'exists') throw conflict(`Folder "${path}" exists already`);
    if (res === 'file') throw conflict(`A file has the name of a folder on the way to "${path}"`);
    this.log.info({ kind, folder: path, by: actor.username }, 'folder made');
  }

  /** Removes an empty folder (members): one that holds neither items nor other folders. */
  async removeFolder(kind: ItemKind, folder: string, actor: Actor | null): Promise<void> {
    if (!actor) throw new AppError('unauthorized', 'Log in to remove folders');
    if (folder === '') throw forbidden('The kinds\' folders cannot be removed');
    const res = await this.state.removeFolder(kind, folder);
    if (res === 'missing') throw notFound('No such folder');
    if (res === 'not_empty') throw conflict('The folder is not empty');
    this.log.info({ kind, folder, by: actor.username }, 'folder removed');
  }

  /**
   * Moves `from` and everything below it to `to` in the same kind, in one step that readers see
   * whole. An admin may move any folder; a member one whose items are all theirs.
   */
  async moveFolder(kind: ItemKind, from: string, to: string, actor: Actor | null): Promise<number> {
    if (!actor) throw new AppError('unauthorized', 'Log in to move folders');
    const target = requireAcceptedFolder(to);
    if (from === '' || target === '') throw forbidden('The kinds\' folders cannot be moved, nor replaced');
    if (target === from) return 0;
    if (actor.role !== 'admin') {
      const others = (await this.state.ownersUnder(kind, from)).filter((o) => o !== actor.username);
      if (others.length > 0) throw forbidden('Only an admin may move a folder holding other members\' items');
    }
    const res = await this.state.moveFolder(kind, from, target);
    if ('refused' in res) {
      switch (res.refused) {
        case 'missing':
          throw notFound('No such folder');
        case 'exists':
          throw conflict(`"${target}" exists already`);
        case 'inside':
          throw badInput('A folder cannot move into itself');
        default:
          throw conflict(`A file has the name of a folder on the way to "${target}"`);
      }
    }
    this.log.info({ kind, from, to: target, items: res.moved, by: actor.username }, 'folder moved');
    return res.moved;
  }

  /**
   * The latest `limit` items `username` uploaded, newest first, each with its path name (the last
   * part of its `path`); a name that a newer item already has is left out, so every name is one item.
   */
  async itemsBy(username: string, limit: number): Promise<{ name: string; item: Item }[]> {
    const seen = new Set<string>();
    const out: { name: string; item: Item }[] = [];
    for (const stored of await this.state.itemsBy(username, limit)) {
      const name = stored.path?.slice(stored.path.lastIndexOf('/') + 1);
      if (!name || seen.has(name)) continue;
      seen.add(name);
      out.push({ name, item: publicItem(stored) });
    }
    return out;
  }

  /** `username`'s item that `itemsBy` lists as `name` (among the latest `limit`), or null. */
  async findOwn(username: string, name: string, limit: number): Promise<Item | null> {
    return (await this.itemsBy(username, limit)).find((e) => e.name === name)?.item ?? null;
  }

  /** Sets the file's own modification time (e.g. FTP MFMT): the uploader's or an admin's change. */
  async setModifiedAt(id: string, at: Date, actor: Actor | null): Promise<Item> {
    const item = await this.stored(id);
    this.authorize(item, actor);
    if (!(await this.state.updateItem(id, { modifiedAt: at.toISOString() }))) throw notFound('No such item');
    return this.get(id);
  }

  countDownload(id: string): Promise<void> {
    return this.state.countDownload(id);
  }

  private authorize(item: StoredItem, actor: Actor | null) {
    if (!actor) throw new AppError('unauthorized', 'Log in to change items');
    if (actor.role !== 'admin' && actor.username !== item.uploadedBy) throw forbidden('Only the uploader or an admin may change this item');
  }

  async update(id: string, patch: ItemPatch, actor: Actor | null): Promise<Item> {
    const item = await this.stored(id);
    this.authorize(item, actor);
    const changes: Partial<StoredItem> = { ...patch };
    if (patch.filename !== undefined) changes.filename = safeFilename(patch.filename, item.filename);
    if (patch.folder !== undefined) changes.folder = requireAcceptedFolder(patch.folder);
    if (!(await this.state.updateItem(id, changes))) throw notFound('No such item');
    return this.get(id);
  }

  async remove(id: string, actor: Actor | null): Promise<void> {
    const item = await this.stored(id);
    this.authorize(item, actor);
    const { blobKey, lastReference } = await this.state.deleteItem(id);
    this.log.info({ id, lastReference, by: actor?.username }, 'item deleted');
    if (lastReference) await this.deleteBlob(blobKey);
  }

  private async deleteBlob(key: string): Promise<void> {
    try {
      await this.blobs.remove(key);
      await this.state.clearTrash(key);
    } catch (err) {
      this.log.warn({ err }, 'blob deletion deferred to the sweeper');
    }
  }

  /**
   * Removes what abandoned uploads left behind (expired leases) and deletes trashed blobs that are
   * due. Idempotent and safe to run from several processes at once.
   */
  async sweep(now = Date.now()): Promise<{ uploads: number; blobs: number }> {
    let uploads = 0;
    for (const { leaseId, token } of await this.state.expiredUploads(now)) {
      if (token) await this.blobs.discard(token);
      await this.state.endUpload(leaseId);
      uploads++;
    }
    let blobs = 0;
    for (const key of await this.state.dueTrash(now)) {
      await this.blobs.remove(key);
      await this.state.clearTrash(key);
      blobs++;
    }
    if (uploads || blobs) this.log.info({ uploads, blobs }, 'swept leftovers');
    return { uploads, blobs };
  }

  /** Runs `sweep` now and then every `intervalMs`; returns a function that stops it. */
  startSweeper(intervalMs = this.leaseMs): () => void {
    let running = false;
    const run = async () => {
      if (running) return;
      running = true;
      try {
        await this.sweep();
      } catch (err) {
        this.log.warn({ err }, 'sweep failed; will retry');
      } finally {
        running = false;
      }
    };
    void run();
    const timer = setInterval(run, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
