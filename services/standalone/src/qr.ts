import qrcode from 'qrcode-generator';

/** Light modules around the code: scanners need a quiet zone (the standard asks 4; 2 scan well on a screen). */
const QUIET_ZONE = 2;

/** Light text on a dark background, whatever the terminal's own colours: the code must not come out inverted. */
const COLOURS = '\x1b[97;40m';
const RESET = '\x1b[0m';

/**
 * `text` as a QR code in half-block characters: each character is two modules stacked, so the code
 * of a LAN address (version 2 or 3) is about 30 columns wide and 15 lines high, small enough for any
 * terminal. Light modules are drawn (█ ▀ ▄), dark ones left as the black background.
 */
export function qrLines(text: string): string[] {
  const qr = qrcode(0, 'L');
  qr.addData(text, 'Byte');
  qr.make();
  const size = qr.getModuleCount();
  const light = (row: number, col: number) => {
    const r = row - QUIET_ZONE;
    const c = col - QUIET_ZONE;
    return r < 0 || c < 0 || r >= size || c >= size || !qr.isDark(r, c);
  };
  const total = size + 2 * QUIET_ZONE;
  const lines: string[] = [];
  for (let row = 0; row < total; row += 2) {
    let line = '';
    for (let col = 0; col < total; col++) {
      const top = light(row, col);
      // Past the last row (the count is odd) there is nothing to draw: background.
      const bottom = row + 1 < total ? light(row + 1, col) : false;
      line += top && bottom ? '█' : top ? '▀' : bottom ? '▄' : ' ';
    }
    lines.push(`${COLOURS}${line}${RESET}`);
  }
  return lines;
}
