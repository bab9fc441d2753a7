import contentDisposition from 'content-disposition';

/**
 * A Content-Disposition header safe for any file name: an ASCII `filename` fallback plus the exact
 * name as RFC 5987/6266 `filename*`. The name must already have passed `safeFilename`.
 */
export function contentDispositionFor(filename: string, type: 'inline' | 'attachment'): string {
  return contentDisposition(filename, { type });
}
