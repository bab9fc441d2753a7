import mime from 'mime-types';
import type { ItemKind } from '@nondivy/contracts';

const GENERIC_TYPES = new Set(['application/octet-stream', 'binary/octet-stream', 'application/unknown', 'application/x-download', '']);
const MIME_TOKEN = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

/**
 * The content type to store for an upload: the client's claim when it is a well-formed, specific
 * MIME type, else the type its file name suggests, else application/octet-stream. Parameters are
 * dropped, so nothing but a bare token ever reaches a response header.
 */
export function resolveContentType(claimed: string | undefined, filename: string): string {
  const bare = (claimed ?? '').split(';')[0]!.trim().toLowerCase();
  if (MIME_TOKEN.test(bare) && !GENERIC_TYPES.has(bare)) return bare;
  const guessed = mime.lookup(filename);
  return guessed ? guessed.toLowerCase() : 'application/octet-stream';
}

const EBOOK_TYPES = new Set([
  'application/epub+zip',
  'application/x-mobipocket-ebook',
  'application/vnd.amazon.ebook',
  'application/x-fictionbook+xml',
  'image/vnd.djvu',
  'application/vnd.comicbook+zip',
  'application/vnd.comicbook-rar',
  'application/x-cbr',
  'application/x-cbz',
]);
const EBOOK_EXT = /\.(epub|mobi|azw3?|fb2|djvu|cbz|cbr|kfx|lit|pdb)$/i;
const SOFTWARE_TYPES = new Set([
  'application/vnd.android.package-archive',
  'application/x-msdownload',
  'application/x-msdos-program',
  'application/x-ms-installer',
  'application/x-msi',
  'application/x-apple-diskimage',
  'application/vnd.debian.binary-package',
  'application/x-debian-package',
  'application/x-redhat-package-manager',
  'application/x-rpm',
  'application/x-iso9660-image',
  'application/x-executable',
  'application/wasm',
]);
const SOFTWARE_EXT = /\.(exe|msi|dmg|pkg|deb|rpm|apk|appimage|iso|flatpak|snap)$/i;
const DOCUMENT_TYPES = /^(text\/|application\/(pdf|rtf|msword|vnd\.openxmlformats|vnd\.oasis\.opendocument|vnd\.ms-|json|xml))/;

/** Guesses an item's kind from its content type and file name. */
export function guessKind(contentType: string, filename: string): ItemKind {
  if (EBOOK_TYPES.has(contentType) || EBOOK_EXT.test(filename)) return 'ebook';
  if (contentType.startsWith('audio/')) return 'audio';
  if (contentType.startsWith('video/')) return 'video';
  if (contentType.startsWith('image/')) return 'image';
  if (SOFTWARE_TYPES.has(contentType) || SOFTWARE_EXT.test(filename)) return 'software';
  if (DOCUMENT_TYPES.test(contentType)) return 'document';
  return 'other';
}

/** Types a browser may render inline from our origin without risk (no script-capable formats). */
export function isInlineSafe(contentType: string): boolean {
  if (contentType === 'image/svg+xml') return false;
  return /^(audio|video|image)\//.test(contentType) || contentType === 'application/pdf' || contentType === 'text/plain';
}
