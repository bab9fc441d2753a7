/**
 * EPUBs built to hurt a careless parser: package documents that make backtracking patterns run for
 * seconds or minutes (tens of thousands of unclosed elements, attribute lists, comments or CDATA that
 * never end, deep nesting), fields too long to keep, and zips whose documents hide behind thousands
 * of entries. Each holds a sane `<dc:creator>` first, so a test can see what survives.
 */
import { deflateRawSync } from 'node:zlib';
import { crc32, zip } from './media.js';

const CONTAINER = `<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>`;
export const HOSTILE_AUTHOR = 'Real Author';
const HEAD = `<?xml version="1.0" encoding="UTF-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>${HOSTILE_AUTHOR}</dc:creator><dc:language>en</dc:language>`;

/** A zip of deflated entries: a megabyte of repeated markup weighs a few kilobytes. */
export function deflatedZip(entries: [name: string, data: Buffer][]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const n = Buffer.from(name);
    const packed = deflateRawSync(data, { level: 9 });
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(packed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(n.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, packed);
    centrals.push(central, n);
    offset += 30 + n.length + packed.length;
  }
  const dir = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, dir, end]);
}

/** An EPUB (deflated) whose package document is `opf`. */
export const epubWithOpf = (opf: string) =>
  deflatedZip([
    ['mimetype', Buffer.from('application/epub+zip')],
    ['META-INF/container.xml', Buffer.from(CONTAINER)],
    ['OEBPS/content.opf', Buffer.from(opf)],
  ]);

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
    ['META-INF/container.xml', Buffer.from(CONTAINER)],
    ['OEBPS/content.opf', Buffer.from(`${HEAD}<dc:title>Buried</dc:title></metadata></package>`)],
  ]);
}
