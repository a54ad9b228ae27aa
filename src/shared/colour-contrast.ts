/**
 * WCAG 2.2 contrast between sRGB colours written `#rrggbb`: relative luminance and the ratio
 * (L1 + 0.05) / (L2 + 0.05), from 1:1 to 21:1. AA asks 4.5:1 for text (a button's label on its
 * fill), 3:1 for large text and the outlines of controls.
 * https://www.w3.org/TR/WCAG22/#dfn-contrast-ratio
 */
export const AA_TEXT_CONTRAST = 4.5;

const HEX_COLOUR = /^#[0-9a-f]{6}$/i;

export function isHexColour(text: string): boolean {
  return HEX_COLOUR.test(text);
}

function channels(hex: string): [number, number, number] {
  return [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16)) as [number, number, number];
}

function relativeLuminance(hex: string): number {
  const [r, g, b] = channels(hex).map((value) => {
    const c = value / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function contrastRatio(a: string, b: string): number {
  const [light, dark] = [relativeLuminance(a), relativeLuminance(b)].sort((x, y) => y - x);
  return (light + 0.05) / (dark + 0.05);
}

/** `hex` scaled towards black, step by step, until white text on it reaches `ratio`: a suggestion for a colour too light. */
export function darkenedFor(hex: string, ratio: number): string {
  const [r, g, b] = channels(hex);
  for (let scale = 1; scale >= 0; scale -= 0.01) {
    const candidate = `#${[r, g, b]
      .map((value) =>
        Math.round(value * scale)
          .toString(16)
          .padStart(2, '0'),
      )
      .join('')}`;
    if (contrastRatio(candidate, '#ffffff') >= ratio) return candidate;
  }
  return '#000000';
}
