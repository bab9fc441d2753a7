import { readableFallback, spellLatinLetters } from './content-disposition-fallback.js';

/**
 * RFC 8187 value encoding: UTF-8, percent-encoding everything but attr-char. A lone surrogate (a JSON
 * body may carry one as `\ud800`) has no UTF-8 form: the round trip through a Buffer turns it into
 * U+FFFD, where encodeURIComponent would throw.
 */
function encodeExtValue(value: string): string {
  // Stryker disable next-line StringLiteral: Buffer.from reads an empty encoding as its default, UTF-8
  const bytes = Buffer.from(value, 'utf8');
  return encodeURIComponent(bytes.toString('utf8')).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * A Content-Disposition header safe for any file name (RFC 6266): a plain-ASCII `filename`
 * fallback (accents stripped, other characters replaced by `_`, quotes and backslashes removed) and,
 * when the name is not plain ASCII, the exact name as `filename*=UTF-8''…`. The header is pure
 * ASCII, so no client can mis-decode it and no control character can reach it.
 */
export function contentDispositionFor(filename: string, type: 'inline' | 'attachment'): string {
  // A fallback with no letter or digit left in its stem becomes `download.<ext>` (readableFallback).
  const fallback = readableFallback(
    spellLatinLetters(filename)
      .normalize('NFKD')
      .replace(/[\u0300-\u036f]/g, '')
      .replace(/[^\x20-\x7e]/g, '_')
      .replace(/["\\%]/g, '_'),
    filename,
  );
  if (fallback === filename) return `${type}; filename="${fallback}"`;
  return `${type}; filename="${fallback}"; filename*=UTF-8''${encodeExtValue(filename)}`;
}
