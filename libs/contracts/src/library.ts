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
export const Description = z.string().trim().max(5000);

/** A library item: the metadata of one file in the public library. */
export const Item = z.object({
  id: ItemId,
  title: z.string(),
  kind: ItemKind,
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
   * Where the item is in the FTP tree: `/library/<kind>/<path name>`, its file name, or for a second
   * item of the same name that name with the start of its id added (`Live (-ChH17).mp3`). Absent
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
  })
  .refine((p) => Object.keys(p).length > 0, 'nothing to change');
export type ItemPatch = z.infer<typeof ItemPatch>;

/** The descriptive fields an uploader may give beside the file. */
export const UploadFields = z.strictObject({
  title: Title.optional(),
  kind: ItemKind.optional(),
  tags: Tags.optional(),
  description: Description.optional(),
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
  tag: TagFilter.optional(),
  sort: z.enum(SORTS).optional(),
  limit: z.coerce.number().int().min(1).max(LIST_LIMIT_MAX).default(LIST_LIMIT_DEFAULT),
  cursor: z.string().max(300).optional(),
  scope: z.enum(['local', 'federated']).default('local'),
});
export type SearchQuery = z.infer<typeof SearchQuery>;

/** Counts per kind and the most common tags among the items a search matches. */
export const Facets = z.object({
  total: z.number().int().nonnegative(),
  kinds: z.record(z.string(), z.number().int().nonnegative()),
  tags: z.array(z.object({ tag: z.string(), count: z.number().int().nonnegative() })),
});
export type Facets = z.infer<typeof Facets>;
