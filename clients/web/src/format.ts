/** Sizes as people read them: 1.4 MB (powers of 1024, one decimal under 10). */
export function bytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do {
    v /= 1024;
    i++;
  } while (v >= 1024 && i < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** Seconds as 1:05:09 or 4:07. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${r}` : `${m}:${r}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export const day = (iso: string) => dateFormat.format(new Date(iso));
export const dayTime = (iso: string) => dateTimeFormat.format(new Date(iso));

export const KIND_LABELS: Record<string, string> = {
  ebook: 'Ebooks',
  audio: 'Music & audio',
  video: 'Video',
  image: 'Images',
  document: 'Documents',
  software: 'Software',
  other: 'Other',
};
export const KIND_SINGULAR: Record<string, string> = {
  ebook: 'Ebook',
  audio: 'Audio',
  video: 'Video',
  image: 'Image',
  document: 'Document',
  software: 'Software',
  other: 'Other',
};

/** Names for what enrichment finds (meta keys); others are shown as they come. */
export const META_LABELS: Record<string, string> = {
  artist: 'Artist',
  album: 'Album',
  albumArtist: 'Album artist',
  track: 'Track',
  disc: 'Disc',
  year: 'Year',
  genre: 'Genre',
  duration: 'Duration',
  durationSeconds: 'Duration',
  bitrate: 'Bit rate',
  sampleRate: 'Sample rate',
  author: 'Author',
  authors: 'Authors',
  publisher: 'Publisher',
  language: 'Language',
  isbn: 'ISBN',
  pages: 'Pages',
  width: 'Width',
  height: 'Height',
  title: 'Title (from the file)',
};

export function metaValue(key: string, value: string | number | boolean): string {
  if (typeof value === 'number' && /^duration/i.test(key)) return duration(value);
  if (typeof value === 'number' && (key === 'width' || key === 'height')) return `${value} px`;
  if (typeof value === 'number' && key === 'bitrate') return `${Math.round(value / 1000)} kbit/s`;
  if (typeof value === 'number' && key === 'sampleRate') return `${value} Hz`;
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  return String(value);
}

/** A folder path for display: `A › B`, or the kind's root. */
export const folderLabel = (folder: string) => (folder ? folder.split('/').join(' › ') : 'Top level');
