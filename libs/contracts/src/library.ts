import { z } from 'zod';

/** What a library item is about; guessed from its type when the uploader does not say. */
export const ITEM_KINDS = ['ebook', 'audio', 'video', 'image', 'document', 'software', 'other'] as const;
export const ItemKind = z.enum(ITEM_KINDS);
export type ItemKind = z.infer<typeof ItemKind>;

/** Item ids are 22 characters of url-safe base64 (128 random bits): unguessable and path-safe. */
export const ItemId = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'not a valid item id');

export const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);

const Tag = z
  .string()
  .trim()
  .toLowerCase()
  .min(1)
  .max(40)
  .regex(/^[\p{L}\p{N}][\p{L}\p{N} ._+#&-]*$/u, 'tags are letters, digits, spaces and . _ + # & -');

/** Tags as the API accepts them: an array, or one comma separated string (multipart forms). */
export const Tags = z
  .union([z.array(z.string()), z.string()])
  .transform((v) => (Array.isArray(v) ? v : v.split(',')))
  .transform((v) => v.map((t) => t.trim()).filter((t) => t.length > 0))
  .pipe(z.array(Tag).max(32, 'at most 32 tags'))
  .transform((v) => [...new Set(v)]);

export const Title = z.string().trim().min(1).max(300);

/** Longest folder path (`A/B/C`, UTF-8 bytes) and deepest folder the library keeps. */
export const FOLDER_MAX_BYTES = 1024;
export const FOLDER_MAX_DEPTH = 16;

/**
 * A folder of a kind as a client writes it: `''` (or `/`) is the kind's root, else names separated
 * by `/` (`Miles Davis/Kind of Blue`). Leading, trailing and doubled slashes are dropped here; each
 * name must then meet the file name rule (checked by the library, which names the accepted form).
 */
export const FolderPath = z
  .string()
  .max(FOLDER_MAX_BYTES * 2, `folders are at most ${FOLDER_MAX_BYTES} bytes`)
  .transform((v) => v.normalize('NFC').split('/').filter((s) => s.length > 0).join('/'));
export const Description = z.string().trim().max(5000);

/** A library item: the metadata of one file in the public library. */
export const Item = z.object({
  id: ItemId,
  title: z.string(),
  kind: ItemKind,
  /** The item's folder within its kind: `''` at the kind's root, else `A/B` (absent from older sites: their root). */
  folder: z.string().default(''),
  tags: z.array(z.string()),
  description: z.string(),
  filename: z.string(),
  contentType: z.string(),
  size: z.number().int().nonnegative(),
  sha256: Sha256,
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  /**
   * The file's own modification time, when a client set it (FTP MFMT or SITE UTIME): null until
   * then, and absent on items of linked sites that do not send it. Listings show `createdAt` instead.
   */
  modifiedAt: z.iso.datetime().nullable().optional(),
  uploadedBy: z.string(),
  downloads: z.number().int().nonnegative(),
  site: z.string().optional(),
  /**
   * Where the item is in the FTP tree: `/library/<kind>/<folder>/<path name>`, the path name being its
   * file name, or for a second item of that name in the same folder the name with the start of its id
   * added (`Live (-ChH17).mp3`). Absent
   * while an item is not yet indexed, and on items of linked sites that do not send it (on a linked
   * site's item it is its place on that site).
   */
  path: z.string().optional(),
  meta: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
});
export type Item = z.infer<typeof Item>;

/** The editable fields (PATCH /library/:id). */
export const ItemPatch = z
  .strictObject({
    title: Title.optional(),
    kind: ItemKind.optional(),
    tags: Tags.optional(),
    description: Description.optional(),
    filename: z.string().min(1).max(1000).optional(),
    /** Moves the item to this folder of its kind (`''`: the kind's root). */
    folder: FolderPath.optional(),
  })
  .refine((p) => Object.keys(p).length > 0, 'nothing to change');
export type ItemPatch = z.infer<typeof ItemPatch>;

/** The descriptive fields an uploader may give beside the file. */
export const UploadFields = z.strictObject({
  title: Title.optional(),
  kind: ItemKind.optional(),
  tags: Tags.optional(),
  description: Description.optional(),
  /** The folder to put the item in (within its kind). */
  folder: FolderPath.optional(),
  /**
   * The file's relative path as a folder upload gives it (`Album/CD1/01.flac`): its folders are put
   * after `folder`, and its last name must be the file part's name.
   */
  path: z.string().max(FOLDER_MAX_BYTES * 2 + 1024).optional(),
});
export type UploadFields = z.infer<typeof UploadFields>;

export const ItemList = z.object({
  items: z.array(Item),
  nextCursor: z.string().nullable(),
  /** How many items match in all (searches only). */
  total: z.number().int().nonnegative().optional(),
  /** With scope=federated: one entry per linked site asked, and whether it answered in time. */
  sites: z.array(z.object({ siteId: z.string(), name: z.string(), ok: z.boolean(), error: z.string().optional() })).optional(),
});
export type ItemList = z.infer<typeof ItemList>;

export const LIST_LIMIT_DEFAULT = 50;
export const LIST_LIMIT_MAX = 200;
export const SORTS = ['relevance', 'new', 'title', 'size', 'popular'] as const;

const TagFilter = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .pipe(z.array(z.string().trim().toLowerCase().min(1).max(40)).max(8, 'at most 8 tags'));

/**
 * Search and browse parameters (GET /library, GET /library/facets). Without `sort`, a query with
 * words is ranked by relevance (title matches first), and browsing is newest first.
 */
export const SearchQuery = z.strictObject({
  q: z.string().max(500, 'q is at most 500 characters').optional(),
  kind: ItemKind.optional(),
  /** Only the items directly in this folder of `kind` (`''` or `/`: its root). */
  folder: FolderPath.optional(),
  /** Only the items in this folder of `kind` or below it. */
  under: FolderPath.optional(),
  tag: TagFilter.optional(),
  sort: z.enum(SORTS).optional(),
  limit: z.coerce.number().int().min(1).max(LIST_LIMIT_MAX).default(LIST_LIMIT_DEFAULT),
  cursor: z.string().max(300).optional(),
  scope: z.enum(['local', 'federated']).default('local'),
})
  .refine((q) => (q.folder === undefined && q.under === undefined) || q.kind !== undefined, { message: 'folder and under need kind: folders are within a kind', path: ['kind'] })
  .refine((q) => q.folder === undefined || q.under === undefined, { message: 'give folder or under, not both', path: ['under'] });
export type SearchQuery = z.infer<typeof SearchQuery>;

export const FOLDER_LIST_LIMIT_DEFAULT = 200;
export const FOLDER_LIST_LIMIT_MAX = 1000;

/** GET /library/folders: the subfolders directly under one folder of a kind, by name, paged. */
export const FolderQuery = z.strictObject({
  kind: ItemKind,
  folder: FolderPath.default(''),
  limit: z.coerce.number().int().min(1).max(FOLDER_LIST_LIMIT_MAX).default(FOLDER_LIST_LIMIT_DEFAULT),
  /** The last name of the previous page. */
  cursor: z.string().max(1024).optional(),
});
export type FolderQuery = z.infer<typeof FolderQuery>;

/** One folder in a listing: its name, its folder path within the kind, its FTP path, how many items are in it or below. */
export const FolderEntry = z.object({
  name: z.string(),
  folder: z.string(),
  path: z.string(),
  items: z.number().int().nonnegative(),
});
export type FolderEntry = z.infer<typeof FolderEntry>;

export const FolderList = z.object({
  kind: ItemKind,
  folder: z.string(),
  /** The folder's FTP path. */
  path: z.string(),
  /** Items in the folder or below it (at the kind's root: the whole kind). */
  items: z.number().int().nonnegative(),
  folders: z.array(FolderEntry),
  nextCursor: z.string().nullable(),
});
export type FolderList = z.infer<typeof FolderList>;

/** Counts per kind and the most common tags among the items a search matches. */
export const Facets = z.object({
  total: z.number().int().nonnegative(),
  kinds: z.record(z.string(), z.number().int().nonnegative()),
  tags: z.array(z.object({ tag: z.string(), count: z.number().int().nonnegative() })),
});
export type Facets = z.infer<typeof Facets>;
