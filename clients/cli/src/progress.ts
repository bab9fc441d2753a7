import { formatBytes } from './format.js';

/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal and --json is off. One
 * line is shared: the bar updated last owns it, and other output clears it first (see output.ts).
 */
let onScreen: ProgressBar | null = null;
const stream = process.stderr;

/** Whether bars are drawn at all. */
export function progressEnabled(json: boolean): boolean {
  return !json && stream.isTTY === true && process.env.TERM !== 'dumb';
}

/** Erases the bar's line (before other output). */
export function clearStatus(): void {
  if (onScreen?.drawn) {
    stream.write('\r\x1b[2K');
    onScreen.drawn = false;
  }
}

/** Draws the bar again (after other output). */
export function redrawStatus(): void {
  onScreen?.render(true);
}

const RENDER_EVERY_MS = 100;

function clock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

export class ProgressBar {
  drawn = false;
  private bytes: number;
  private readonly startBytes: number;
  private readonly startedAt = Date.now();
  private renderedAt = 0;
  private finished = false;

  /** `initial`: bytes already there (a resumed download), not counted in the speed. */
  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly enabled: boolean,
    initial = 0,
  ) {
    this.bytes = initial;
    this.startBytes = initial;
  }

  add(n: number): void {
    this.set(this.bytes + n);
  }

  set(bytes: number): void {
    this.bytes = bytes;
    if (this.enabled && !this.finished && Date.now() - this.renderedAt >= RENDER_EVERY_MS) this.render(false);
  }

  /** Draws the final state and leaves it on its own line (ok), or erases it (failed). */
  finish(ok = true): void {
    if (!this.enabled || this.finished) return;
    if (ok) this.render(true);
    else if (onScreen === this) clearStatus();
    this.finished = true;
    if (onScreen === this) {
      if (ok) stream.write('\n');
      this.drawn = false;
      onScreen = null;
    }
  }

  render(force: boolean): void {
    if (!this.enabled || this.finished) return;
    if (!force && Date.now() - this.renderedAt < RENDER_EVERY_MS) return;
    if (onScreen !== this) {
      clearStatus();
      onScreen = this;
    }
    this.renderedAt = Date.now();
    stream.write(`\r\x1b[2K${this.line(stream.columns || 80)}`);
    this.drawn = true;
  }

  private line(columns: number): string {
    const elapsed = (Date.now() - this.startedAt) / 1000;
    const rate = elapsed > 0.2 ? (this.bytes - this.startBytes) / elapsed : 0;
    const ratio = this.total > 0 ? Math.min(1, this.bytes / this.total) : 1;
    const pct = `${Math.floor(ratio * 100)}%`.padStart(4);
    const amounts = `${formatBytes(this.bytes)} / ${formatBytes(this.total)}`;
    const speed = rate > 0 ? `${formatBytes(rate)}/s` : '';
    const eta = ratio >= 1 ? clock(elapsed) : rate > 0 ? clock((this.total - this.bytes) / rate) : '--:--';
    const tail = ` ${pct} ${amounts}  ${speed}  ${eta}`;
    const room = columns - 1 - tail.length;
    const barWidth = Math.max(0, Math.min(30, room - 12));
    let label = [...this.label];
    const labelRoom = Math.max(0, room - (barWidth > 0 ? barWidth + 3 : 0));
    if (label.length > labelRoom) label = labelRoom > 1 ? [...label.slice(0, labelRoom - 1), '…'] : [];
    const filled = Math.round(ratio * barWidth);
    const bar = barWidth > 0 ? ` [${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]` : '';
    return `${label.join('')}${bar}${tail}`.slice(0, Math.max(0, columns - 1));
  }
}
