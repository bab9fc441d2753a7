/**
 * DNS-SD instance names and the host names that go with them. An instance name is free UTF-8 text
 * (RFC 6763 4.1.1), what a file manager or browser lists, but it is one DNS label: at most 63 bytes,
 * and no ASCII control characters. The site's name (up to 100 characters) is fitted to that here,
 * not left to the responder, which fails on a longer label and splits a name at its dots. When
 * another device on the LAN already holds the name, the responder (ciao) renames ours "Name (2)",
 * "Name (3)"… (a host name "Name-(2)"): the fitted name leaves room for that suffix, so a renamed
 * name still fits.
 */

/** One DNS label's limit (RFC 1035 2.3.4). */
export const MAX_LABEL_BYTES = 63;

/** Room for the responder's conflict suffix, up to " (99)" (its host-name form "-(99)" is as long). */
export const CONFLICT_SUFFIX_BYTES = Buffer.byteLength(' (99)');

/** The name used when the site's name has nothing left once cleaned (only dots or spaces). */
export const FALLBACK_NAME = 'Nondivy';

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * The site's name as one label: control characters and dots become spaces (ciao would cut the
 * label at a dot), runs of spaces one space, then cut, at a whole character (grapheme: an accent or
 * an emoji is never split), so that it and `suffix` take at most 63 bytes less the room for a
 * conflict suffix. `suffix` (such as " (FTP)") is always kept whole.
 */
export function instanceName(siteName: string, suffix = ''): string {
  let clean = '';
  let space = false;
  for (const ch of siteName) {
    const code = ch.codePointAt(0)!;
    const blank = code < 0x20 || code === 0x7f || ch === '.' || /\s/.test(ch);
    if (blank) space = clean !== '';
    else {
      clean += (space ? ' ' : '') + ch;
      space = false;
    }
  }
  const budget = MAX_LABEL_BYTES - CONFLICT_SUFFIX_BYTES - Buffer.byteLength(suffix);
  let fitted = '';
  let bytes = 0;
  for (const { segment } of segmenter.segment(clean || FALLBACK_NAME)) {
    const size = Buffer.byteLength(segment);
    if (bytes + size > budget) break;
    fitted += segment;
    bytes += size;
  }
  return fitted.trimEnd() + suffix;
}
