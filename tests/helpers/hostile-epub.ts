/**
 * EPUBs built to hurt a careless parser: package documents that make backtracking patterns run for
 * seconds or minutes (tens of thousands of unclosed elements, attribute lists, comments or CDATA that
 * never end, deep nesting), fields too long to keep, and zips whose documents hide behind thousands
 * of entries. Each holds a sane `<dc:creator>` first, so a test can see what survives.
 */
import { EPUB_CONTAINER, zip } from './media.js';

export const HOSTILE_AUTHOR = 'Real Author';
const HEAD = `<?xml version="1.0" encoding="UTF-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>${HOSTILE_AUTHOR}</dc:creator><dc:language>en</dc:language>`;

/** An EPUB (deflated: a megabyte of repeated markup weighs a few kilobytes) whose package document is `opf`. */
export const epubWithOpf = (opf: string) =>
  zip(
    [
      ['mimetype', Buffer.from('application/epub+zip')],
      ['META-INF/container.xml', Buffer.from(EPUB_CONTAINER)],
      ['OEBPS/content.opf', Buffer.from(opf)],
    ],
    { deflate: true },
  );

/** The package documents of the hostile EPUBs, by name; each stays under the 1 MiB OPF limit. */
export const hostileOpfs: Record<string, string> = {
  /** The reviewed one: 100,000 `<dc:title>` never closed (about 33 s of backtracking for the old pattern). */
  'unclosed-titles': HEAD + '<dc:title>'.repeat(100_000),
  /** Tens of thousands of title tags whose attribute lists never reach a `>`. */
  'endless-attributes': HEAD + '<dc:title a="1" b="2"'.repeat(40_000),
  /** A comment that never ends, over titles that never close. */
  'unclosed-comment': HEAD + '<!--' + '<dc:title>x'.repeat(80_000),
  /** A title made of CDATA sections that never end. */
  'unclosed-cdata': HEAD + '<dc:title>' + '<![CDATA[<dc:title>'.repeat(50_000),
  /** A title nested 100,000 elements deep. */
  'deep-nesting': HEAD + '<dc:title>' + '<a>'.repeat(100_000) + 'Deep' + '</a>'.repeat(100_000) + '</dc:title></metadata></package>',
};

/** A well-formed EPUB whose title is `titleChars` long. */
export const longTitleEpub = (titleChars: number) => epubWithOpf(`${HEAD}<dc:title>${'t'.repeat(titleChars)}</dc:title></metadata></package>`);

/** A well-formed EPUB whose container.xml comes after `n` empty entries. */
export function buriedContainerEpub(n: number): Buffer {
  const filler: [string, Buffer][] = Array.from({ length: n }, (_, i) => [`f/${i}`, Buffer.alloc(0)]);
  return zip([
    ['mimetype', Buffer.from('application/epub+zip')],
    ...filler,
    ['META-INF/container.xml', Buffer.from(EPUB_CONTAINER)],
    ['OEBPS/content.opf', Buffer.from(`${HEAD}<dc:title>Buried</dc:title></metadata></package>`)],
  ]);
}
