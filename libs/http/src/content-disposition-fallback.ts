/**
 * Latin letters that Unicode does not decompose into a base letter and an accent, spelled the way
 * their languages write them in ASCII (NFKD handles é, ñ, Å… already).
 */
const LATIN_LETTERS: Record<string, string> = {
  ß: 'ss', ẞ: 'SS', æ: 'ae', Æ: 'AE', œ: 'oe', Œ: 'OE', ø: 'o', Ø: 'O', ł: 'l', Ł: 'L', đ: 'd', Đ: 'D',
  ð: 'd', Ð: 'D', þ: 'th', Þ: 'Th', ı: 'i', ħ: 'h', Ħ: 'H',
};
const LATIN_LETTER = new RegExp(`[${Object.keys(LATIN_LETTERS).join('')}]`, 'g');

/** `name` with the Latin letters above spelled out in ASCII. */
export function spellLatinLetters(name: string): string {
  return name.replace(LATIN_LETTER, (c) => LATIN_LETTERS[c]!);
}

/** The stem of a fallback whose own is unreadable. */
const GENERIC_STEM = 'download';
/** An extension is kept when it is a dot and 1 to 10 ASCII letters or digits (`.txt`, `.tar`, `.mp4`). */
const MAX_EXTENSION_CHARS = 10;

const isAsciiAlnum = (code: number) => (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122);
const hasAsciiAlnum = (text: string) => [...text].some((c) => isAsciiAlnum(c.charCodeAt(0)));

/**
 * A readable ASCII fallback: when replacing the name's characters left no letter or digit in its
 * stem (a name in Japanese, Cyrillic, Greek… becomes `_____.txt`), `download` and the extension
 * instead; the exact name travels in `filename*`. A name that was plain ASCII is never changed.
 */
export function readableFallback(fallback: string, original: string): string {
  if (fallback === original) return fallback;
  const dot = fallback.lastIndexOf('.');
  const stem = dot > 0 ? fallback.slice(0, dot) : fallback;
  if (hasAsciiAlnum(stem)) return fallback;
  // Stryker disable next-line ConditionalExpression,EqualityOperator,StringLiteral: with dot <= 0 the stem above was the whole name, which has no letter or digit, so whatever this yields is refused below as well
  const extension = dot > 0 ? fallback.slice(dot + 1) : '';
  const keep = extension.length > 0 && extension.length <= MAX_EXTENSION_CHARS && [...extension].every((c) => isAsciiAlnum(c.charCodeAt(0)));
  return keep ? `${GENERIC_STEM}.${extension}` : GENERIC_STEM;
}
