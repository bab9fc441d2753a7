import { PassThrough, type Readable } from 'node:stream';
import type { Item } from '@nondivy/contracts';
import type { BlobStore } from '@nondivy/storage';
import { fileTypeFromBuffer } from 'file-type';
import { imageSize } from 'image-size';
import { parseStream } from 'music-metadata';
import yauzl from 'yauzl';

export type Meta = Item['meta'];

/** Bytes read from the start of a blob to sniff its type and read image headers. */
const HEAD_BYTES = 256 * 1024;
/** Largest OPF document read from an EPUB. */
const MAX_OPF_BYTES = 1024 * 1024;
const GENERIC_TYPES = new Set(['application/octet-stream', 'binary/octet-stream', 'application/unknown']);

/** What enrichment found: searchable metadata, and a better content type when the claim was generic. */
export interface Extracted {
  meta: Meta;
  contentType?: string;
}

async function readAll(stream: Readable, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    parts.push(c);
    n += c.length;
    if (n > max) {
      stream.destroy();
      throw new Error(`more than ${max} bytes`);
    }
  }
  return Buffer.concat(parts);
}

const clean = (v: unknown, max = 300): string | undefined => {
  if (typeof v !== 'string') return undefined;
  const s = v.replace(/[\u0000-\u001f\u007f]/g, ' ').replace(/\s+/g, ' ').trim();
  return s ? s.slice(0, max) : undefined;
};

function compact(meta: Record<string, string | number | boolean | undefined>): Meta {
  return Object.fromEntries(Object.entries(meta).filter(([, v]) => v !== undefined && v !== '')) as Meta;
}

/** ID3/Vorbis/MP4… tags of an audio file, streamed (covers skipped). */
async function audioMeta(blobs: BlobStore, key: string, item: Item, contentType: string): Promise<Meta> {
  const stream = await blobs.read(key);
  try {
    const { common, format } = await parseStream(stream, { mimeType: contentType, size: item.size }, { skipCovers: true });
    return compact({
      artist: clean(common.artist),
      album: clean(common.album),
      title: clean(common.title),
      track: common.track?.no ?? undefined,
      year: common.year ?? undefined,
      genre: clean(common.genre?.join(', ')),
      duration: format.duration ? Math.round(format.duration * 10) / 10 : undefined,
    });
  } finally {
    stream.destroy();
  }
}

/** A zip held in the blob store, read by ranges: only its directory and the entries read are fetched. */
class BlobRangeReader extends yauzl.RandomAccessReader {
  constructor(
    private readonly blobs: BlobStore,
    private readonly key: string,
  ) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    // yauzl wants a stream at once: hand it a pass-through fed when the blob range opens.
    const out = new PassThrough();
    if (end <= start) {
      out.end();
      return out;
    }
    this.blobs.read(this.key, { start, end: end - 1 }).then(
      (s) => s.on('error', (err) => out.destroy(err)).pipe(out),
      (err: Error) => out.destroy(err),
    );
    return out;
  }
}

function openZip(blobs: BlobStore, key: string, size: number): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.fromRandomAccessReader(new BlobRangeReader(blobs, key), size, { lazyEntries: true, autoClose: false }, (err, zip) =>
      err || !zip ? reject(err ?? new Error('not a zip')) : resolve(zip),
    );
  });
}

function readEntry(zip: yauzl.ZipFile, name: string, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    let found = false;
    zip.on('entry', (entry: yauzl.Entry) => {
      if (entry.fileName !== name) return zip.readEntry();
      found = true;
      if (entry.uncompressedSize > max) return reject(new Error(`${name} is too large`));
      zip.openReadStream(entry, (err, stream) => {
        if (err || !stream) return reject(err ?? new Error('cannot read entry'));
        readAll(stream, max).then(resolve, reject);
      });
    });
    zip.once('end', () => !found && resolve(null));
    zip.once('error', reject);
    zip.readEntry();
  });
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
const decodeXml = (s: string) =>
  s
    .replace(/<!\[CDATA\[([\s\S]*?)\]\]>/g, '$1')
    .replace(/&(#x?[0-9a-f]+|\w+);/gi, (m, e: string) =>
      e[0] === '#' ? String.fromCodePoint(parseInt(e.slice(e[1] === 'x' || e[1] === 'X' ? 2 : 1), e[1] === 'x' || e[1] === 'X' ? 16 : 10)) : (XML_ENTITIES[e] ?? m),
    );
const dcField = (opf: string, name: string) => {
  const m = new RegExp(`<dc:${name}\\b[^>]*>([\\s\\S]*?)</dc:${name}>`, 'i').exec(opf);
  return m ? clean(decodeXml(m[1]!.replace(/<[^>]+>/g, ''))) : undefined;
};

/** Title, author and language from an EPUB's package document (META-INF/container.xml → OPF). */
async function epubMeta(blobs: BlobStore, key: string, size: number): Promise<Meta> {
  let zip = await openZip(blobs, key, size);
  try {
    const container = await readEntry(zip, 'META-INF/container.xml', 64 * 1024);
    if (!container) throw new Error('no META-INF/container.xml');
    const opfPath = /full-path\s*=\s*"([^"]+)"/.exec(container.toString('utf8'))?.[1];
    if (!opfPath) throw new Error('no rootfile in container.xml');
    zip.close();
    zip = await openZip(blobs, key, size);
    const opf = await readEntry(zip, decodeXml(opfPath), MAX_OPF_BYTES);
    if (!opf) throw new Error(`no ${opfPath.slice(0, 100)}`);
    const text = opf.toString('utf8');
    return compact({ title: dcField(text, 'title'), author: dcField(text, 'creator'), language: dcField(text, 'language'), publisher: dcField(text, 'publisher') });
  } finally {
    zip.close();
  }
}

/**
 * Reads what can be known from an item's bytes: a content type sniffed from its first bytes when the
 * uploader's claim is missing or generic; audio tags; EPUB title/author/language; image dimensions.
 * Throws when the file cannot be parsed (the caller keeps the item and logs the reason).
 */
export async function extract(blobs: BlobStore, key: string, item: Item): Promise<Extracted> {
  const head = item.size === 0 ? Buffer.alloc(0) : await readAll(await blobs.read(key, { start: 0, end: Math.min(item.size, HEAD_BYTES) - 1 }), HEAD_BYTES);
  let contentType = item.contentType;
  let sniffed: string | undefined;
  if (GENERIC_TYPES.has(contentType)) {
    sniffed = (await fileTypeFromBuffer(head))?.mime;
    if (sniffed) contentType = sniffed;
  }
  const found: Extracted = { meta: {}, contentType: sniffed };
  if (contentType.startsWith('audio/')) {
    found.meta = await audioMeta(blobs, key, item, contentType);
  } else if (contentType === 'application/epub+zip' || /\.epub$/i.test(item.filename)) {
    found.meta = await epubMeta(blobs, key, item.size);
  } else if (contentType.startsWith('image/') && contentType !== 'image/svg+xml') {
    const { width, height } = imageSize(head);
    found.meta = compact({ width, height });
  }
  return found;
}
