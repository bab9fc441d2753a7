import { PassThrough, type Readable } from 'node:stream';
import type { Item } from '@nondivy/contracts';
import type { BlobStore } from '@nondivy/storage';
import { fileTypeFromBuffer } from 'file-type';
import { imageSize } from 'image-size';
import { parseStream } from 'music-metadata';
import yauzl from 'yauzl';
import { clean, dublinCore, rootfilePath } from './xml-scan.js';

export type Meta = Item['meta'];

/** What the extractors read: a blob store, or the worker thread's view of the main thread's. */
export type BlobSource = Pick<BlobStore, 'read'>;

/** Bytes read from the start of a blob to sniff its type and read image headers. */
const HEAD_BYTES = 256 * 1024;
/** Largest container.xml read from an EPUB. */
const MAX_CONTAINER_BYTES = 64 * 1024;
/** Largest OPF document read from an EPUB. */
const MAX_OPF_BYTES = 1024 * 1024;
/**
 * Zip entries looked at while searching an EPUB for container.xml, then for the OPF. Real books have
 * hundreds to a few thousand files, and both documents usually come first; a zip may declare
 * millions of entries.
 */
export const MAX_ZIP_ENTRIES = 10_000;
/** Small zip reads (headers, the central directory) are served from one block of this size. */
const ZIP_BLOCK_BYTES = 64 * 1024;
const GENERIC_TYPES = new Set(['application/octet-stream', 'binary/octet-stream', 'application/unknown']);
const EPUB_FIELDS = ['title', 'creator', 'language', 'publisher'] as const;

/** What enrichment found: searchable metadata, and a better content type when the claim was generic. */
export interface Extracted {
  meta: Meta;
  contentType?: string;
  /** Fields left out because they broke a limit (field → reason); the rest of the meta stands. */
  dropped?: Record<string, string>;
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

function compact(meta: Record<string, string | number | boolean | undefined>): Meta {
  return Object.fromEntries(Object.entries(meta).filter(([, v]) => v !== undefined && v !== '')) as Meta;
}

/** ID3/Vorbis/MP4… tags of an audio file, streamed (covers skipped). */
async function audioMeta(blobs: BlobSource, key: string, item: Item, contentType: string): Promise<Meta> {
  const stream = await blobs.read(key);
  try {
    const { common, format } = await parseStream(stream, { mimeType: contentType, size: item.size }, { skipCovers: true });
    const year = common.year;
    return compact({
      artist: clean(common.artist),
      album: clean(common.album),
      title: clean(common.title),
      track: common.track?.no ?? undefined,
      year: year ?? undefined,
      genre: clean(common.genre?.slice(0, 10).join(', ')),
      duration: format.duration && Number.isFinite(format.duration) ? Math.round(format.duration * 10) / 10 : undefined,
    });
  } finally {
    stream.destroy();
  }
}

/**
 * A zip held in the blob store, read by ranges: only its directory and the entries read are fetched.
 * yauzl reads headers a few dozen bytes at a time; those small reads are served from one cached
 * block, so scanning a directory costs one blob read per block, not one per entry.
 */
class BlobRangeReader extends yauzl.RandomAccessReader {
  private block: { start: number; data: Buffer } | null = null;

  constructor(
    private readonly blobs: BlobSource,
    private readonly key: string,
    private readonly size: number,
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
    const b = this.block;
    if (b && start >= b.start && end <= b.start + b.data.length) {
      out.end(b.data.subarray(start - b.start, end - b.start));
      return out;
    }
    if (end - start <= ZIP_BLOCK_BYTES) {
      const blockEnd = Math.min(this.size, start + ZIP_BLOCK_BYTES);
      this.blobs
        .read(this.key, { start, end: blockEnd - 1 })
        .then((s) => readAll(s, ZIP_BLOCK_BYTES))
        .then(
          (data) => {
            this.block = { start, data };
            out.end(data.subarray(0, end - start));
          },
          (err: Error) => out.destroy(err),
        );
      return out;
    }
    this.blobs.read(this.key, { start, end: end - 1 }).then(
      (s) => s.on('error', (err) => out.destroy(err)).pipe(out),
      (err: Error) => out.destroy(err),
    );
    return out;
  }
}

function openZip(blobs: BlobSource, key: string, size: number): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.fromRandomAccessReader(new BlobRangeReader(blobs, key, size), size, { lazyEntries: true, autoClose: false }, (err, zip) =>
      err || !zip ? reject(err ?? new Error('not a zip')) : resolve(zip),
    );
  });
}

/** The bytes of the entry `name`, looking at no more than MAX_ZIP_ENTRIES entries; null when absent. */
function readEntry(zip: yauzl.ZipFile, name: string, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    let found = false;
    let seen = 0;
    zip.on('entry', (entry: yauzl.Entry) => {
      if (entry.fileName !== name) {
        if (++seen >= MAX_ZIP_ENTRIES) return reject(new Error(`${name.slice(0, 100)} is not among the first ${MAX_ZIP_ENTRIES} zip entries`));
        return zip.readEntry();
      }
      found = true;
      if (entry.uncompressedSize > max) return reject(new Error(`${name.slice(0, 100)} is larger than ${max} bytes`));
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

/** Title, author, language and publisher from an EPUB's package document (META-INF/container.xml → OPF). */
async function epubMeta(blobs: BlobSource, key: string, size: number): Promise<Pick<Extracted, 'meta' | 'dropped'>> {
  let zip = await openZip(blobs, key, size);
  try {
    const container = await readEntry(zip, 'META-INF/container.xml', MAX_CONTAINER_BYTES);
    if (!container) throw new Error('no META-INF/container.xml');
    const opfPath = rootfilePath(container.toString('utf8'));
    if (!opfPath) throw new Error('no rootfile in container.xml');
    zip.close();
    zip = await openZip(blobs, key, size);
    const opf = await readEntry(zip, opfPath, MAX_OPF_BYTES);
    if (!opf) throw new Error(`no ${opfPath.slice(0, 100)}`);
    const { values, dropped } = dublinCore(opf.toString('utf8'), EPUB_FIELDS);
    const renamed = Object.fromEntries(Object.entries(dropped).map(([k, v]) => [k === 'creator' ? 'author' : k, v]));
    return {
      meta: compact({ title: values.title, author: values.creator, language: values.language, publisher: values.publisher }),
      ...(Object.keys(renamed).length ? { dropped: renamed } : {}),
    };
  } finally {
    zip.close();
  }
}

/**
 * Reads what can be known from an item's bytes: a content type sniffed from its first bytes when the
 * uploader's claim is missing or generic; audio tags; EPUB title/author/language; image dimensions.
 * Throws when the file cannot be parsed (the caller keeps the item and logs the reason). Runs in the
 * enrichment worker thread (enrich-worker.ts), which bounds its time and memory.
 */
export async function extract(blobs: BlobSource, key: string, item: Item): Promise<Extracted> {
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
  } else if (contentType === 'application/epub+zip' || item.filename.toLowerCase().endsWith('.epub')) {
    Object.assign(found, await epubMeta(blobs, key, item.size));
  } else if (contentType.startsWith('image/') && contentType !== 'image/svg+xml') {
    const { width, height } = imageSize(head);
    found.meta = compact({ width, height });
  }
  return found;
}
