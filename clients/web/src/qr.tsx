import qrcode from 'qrcode-generator';
import { useMemo } from 'preact/hooks';

/** Light modules around the code, as the standard asks: phone cameras find the code by this margin. */
const QUIET_ZONE = 4;

/** Longest text we draw (bytes): a level-M code of this size is about version 25, still scannable on a phone screen. */
export const QR_MAX_BYTES = 1000;

/**
 * The QR modules of `text` (UTF-8, byte mode, error correction M: survives a glare or a scratched screen),
 * or null when the text is too long for a code a phone can read. The library's own byte conversion keeps
 * only the low 8 bits of each UTF-16 unit, so the text goes in already encoded, one byte per character.
 */
export function qrModules(text: string): { size: number; path: string } | null {
  const bytes = new TextEncoder().encode(text);
  if (bytes.length > QR_MAX_BYTES) return null;
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  const qr = qrcode(0, 'M');
  try {
    qr.addData(binary, 'Byte');
    qr.make();
  } catch {
    return null; // the library throws a string on overflow
  }
  const size = qr.getModuleCount();
  // One path for all dark modules: runs of dark modules in a row become one rectangle (a small DOM).
  let path = '';
  for (let row = 0; row < size; row++) {
    let col = 0;
    while (col < size) {
      if (!qr.isDark(row, col)) {
        col++;
        continue;
      }
      const start = col;
      while (col < size && qr.isDark(row, col)) col++;
      path += `M${start + QUIET_ZONE} ${row + QUIET_ZONE}h${col - start}v1h${start - col}z`;
    }
  }
  return { size, path };
}

/**
 * `text` as a QR code in an inline SVG (nothing fetched, nothing inline-styled: the page's CSP allows
 * neither data: images nor style attributes). Dark modules on white with a quiet zone, whatever the
 * page's theme, so the code is never inverted; edges kept crisp at any scale. The image's name is the
 * text itself, so a screen reader says what a sighted person would scan. `size` is the drawn width in
 * CSS pixels (the default fits a phone screen with room to spare); `label` prefixes the spoken name.
 */
export function QrCode({ text, size = 200, label }: { text: string; size?: number; label?: string }) {
  const modules = useMemo(() => qrModules(text), [text]);
  const name = label ? `${label}: ${text}` : `QR code: ${text}`;
  if (!modules) {
    return (
      <p class="qr-too-long" role="note">
        Too long for a QR code ({text.length} characters).
      </p>
    );
  }
  const total = modules.size + 2 * QUIET_ZONE;
  return (
    <svg
      class="qr"
      role="img"
      aria-label={name}
      width={size}
      height={size}
      viewBox={`0 0 ${total} ${total}`}
      shape-rendering="crispEdges"
      data-text={text}
    >
      <title>{name}</title>
      <rect width={total} height={total} fill="#fff" />
      <path d={modules.path} fill="#000" />
    </svg>
  );
}
