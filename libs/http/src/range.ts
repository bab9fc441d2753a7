/** An inclusive byte range. */
export interface Range {
  start: number;
  end: number;
}

/** Most ranges a request may list; more is treated as no Range header (a full 200 answer). */
const MAX_RANGES = 50;
/** Distinct ranges after merging that we answer as multipart/byteranges; more gets a full answer. */
export const MAX_MULTIPART_RANGES = 8;

/**
 * Parses a `Range: bytes=…` header against a representation of `size` bytes (RFC 9110 §14).
 * Returns the ranges sorted and merged (overlapping or adjacent ranges become one), `'unsatisfiable'`
 * when none of them overlaps the content (→ 416), or `null` when the header is absent, malformed or
 * abusive and should be ignored (→ a normal 200).
 */
export function parseRange(header: string | undefined, size: number): Range[] | 'unsatisfiable' | null {
  if (!header || header.length > 2000) return null;
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m) return null;
  const specs = m[1]!.split(',');
  if (specs.length > MAX_RANGES) return null;
  const ranges: Range[] = [];
  for (const raw of specs) {
    const spec = raw.trim();
    if (spec === '') continue;
    const r = /^(\d{0,15})-(\d{0,15})$/.exec(spec);
    if (!r || (r[1] === '' && r[2] === '')) return null;
    if (r[1] === '') {
      const suffix = Number(r[2]);
      if (suffix === 0) continue;
      ranges.push({ start: Math.max(0, size - suffix), end: size - 1 });
    } else {
      const start = Number(r[1]);
      const end = r[2] === '' ? size - 1 : Math.min(Number(r[2]), size - 1);
      if (r[2] !== '' && Number(r[2]) < start) return null;
      if (start >= size) continue;
      ranges.push({ start, end });
    }
  }
  if (ranges.length === 0) return 'unsatisfiable';
  ranges.sort((a, b) => a.start - b.start);
  const merged: Range[] = [ranges[0]!];
  // Stryker disable next-line MethodExpression: from ranges[0] itself, the loop merges that range into itself (same object, end unchanged)
  for (const r of ranges.slice(1)) {
    const last = merged[merged.length - 1]!;
    if (r.start <= last.end + 1) last.end = Math.max(last.end, r.end);
    else merged.push({ ...r });
  }
  return merged;
}
