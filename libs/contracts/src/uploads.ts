import { z } from 'zod';
import { ItemKind, UploadFields } from './library.js';

/**
 * Resumable uploads over the tus 1.0 protocol (`/api/v1/uploads`): the ids, the `Upload-Metadata`
 * the gateway accepts, and the record each upload has in Redis between its requests.
 */

/** The tus version spoken, and the extensions. */
export const TUS_VERSION = '1.0.0';
export const TUS_EXTENSIONS = ['creation', 'creation-with-upload', 'termination', 'expiration'] as const;

/** Upload ids are 22 characters of url-safe base64 (128 random bits), like item ids. */
export const UploadId = z.string().regex(/^[A-Za-z0-9_-]{22}$/, 'not a valid upload id');

/** A MIME type as a client may announce it (`filetype`): type/subtype with optional parameters. */
const MediaType = z
  .string()
  .max(200)
  .regex(/^[\w.+-]+\/[\w.+-]+(?:\s*;\s*[\w.+-]+=(?:[\w.+-]+|"[^"\\\r\n]*"))*$/, 'expected a media type such as video/mp4');

/**
 * The fields of `Upload-Metadata`: the same as a multipart upload's (POST /library: `title`, `kind`,
 * `tags` comma separated, `description`, `folder`), the file's name as `filename` (required: the
 * multipart part's file name) and optionally its type as `filetype` (the part's Content-Type; tus
 * clients send it under that name). Any other key is refused.
 */
export const UploadMetadata = UploadFields.omit({ path: true })
  .extend({
    filename: z.string().min(1, 'filename is required').max(1000),
    filetype: MediaType.optional(),
  })
  .strict();
export type UploadMetadata = z.infer<typeof UploadMetadata>;

/** Longest `Upload-Metadata` header accepted (the description alone may be 5000 characters). */
export const UPLOAD_METADATA_MAX_BYTES = 32 * 1024;

const METADATA_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Reads a tus `Upload-Metadata` header: comma-separated pairs of a key and its value in base64
 * (standard alphabet, padded), or a key alone (an empty value). Strict: a key twice, a key with
 * other characters, a value that is not canonical base64 or not UTF-8 each give a message naming
 * the key; the result is then validated by `UploadMetadata`.
 */
export function parseUploadMetadata(header: string): { values: Record<string, string> } | { error: string } {
  if (Buffer.byteLength(header) > UPLOAD_METADATA_MAX_BYTES) return { error: `Upload-Metadata is longer than ${UPLOAD_METADATA_MAX_BYTES} bytes` };
  const values: Record<string, string> = Object.create(null);
  if (header.trim() === '') return { values };
  for (const pair of header.split(',')) {
    const parts = pair.trim().split(' ');
    const [key, value = '', ...more] = parts;
    if (!key || !METADATA_KEY.test(key) || more.length > 0) return { error: `Upload-Metadata: "${pair.trim().slice(0, 40)}" is not "key base64value"` };
    if (key in values) return { error: `Upload-Metadata: "${key}" given twice` };
    if (!BASE64.test(value)) return { error: `Upload-Metadata: the value of "${key}" is not base64` };
    try {
      values[key] = utf8.decode(Buffer.from(value, 'base64'));
    } catch {
      return { error: `Upload-Metadata: the value of "${key}" is not UTF-8 text` };
    }
  }
  return { values };
}

/** The item fields a resumable upload commits with (the library's `NewItemInput`). */
export interface UploadItemInput {
  filename?: string;
  contentType?: string;
  title?: string;
  kind?: ItemKind;
  tags?: string[];
  description?: string;
  folder?: string;
}

/** What a finished resumable upload became. */
export interface UploadResult {
  itemId: string;
  /** The item's path (`/library/<kind>/<folder>/<name>`), when known. */
  path: string | null;
}

/** One resumable upload as recorded in Redis between its requests. */
export interface StoredUpload {
  /** 22 url-safe characters: 128 random bits. */
  id: string;
  /** The creator's username (`guest` for a guest): nobody else may see or continue it. */
  owner: string;
  length: number;
  /** The durable offset: every byte before it is staged, hashed into `hashState`, and survives a crash. */
  offset: number;
  /** The tus `Upload-Metadata` header as the client sent it (HEAD echoes it). */
  metadata: string;
  /** The validated item fields the metadata carries. */
  input: UploadItemInput;
  /** The saved SHA-256 state (hash-wasm, base64) of the bytes before `offset`; `''` at 0. */
  hashState: string;
  /** The blob store's staging token and its durable pieces (s3: part ETags). */
  staging: { token: string; pieces: string[] };
  createdAt: number;
  /** When it is swept if not finished (ms); pushed back by every checkpoint. */
  expiresAt: number;
  /** Set once the item exists (the record then lingers for a while, so a client that lost the answer learns it). */
  finished?: UploadResult;
  /**
   * Set for an upload named by its path rather than its id (an FTP STOR): where it goes, as the key
   * `uploadPlaceKey` makes; its owner has at most one unfinished upload there. The tus door never sees it.
   */
  place?: string;
  /**
   * True while the length is not known (FTP announces none): `length` is then the most it may reach
   * (the upload limit), the owner's caps count its durable bytes, and the end of a request's body may
   * end the upload, which fixes the length.
   */
  lengthDeferred?: boolean;
}
