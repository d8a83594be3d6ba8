/** Human output of the operator commands: aligned columns, `-` for nothing. */

/** Renders rows under a header, each column as wide as its widest cell, two spaces apart; the last column is not padded. */
export function table(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | null | undefined>>): string[] {
  const cells = [header, ...rows.map((r) => r.map(cell))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]!))).join('  ').trimEnd());
}

/** `key  value` lines with the keys aligned. */
export function keyValues(pairs: ReadonlyArray<readonly [string, string | number | null | undefined]>): string[] {
  const width = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(width)}  ${cell(v)}`.trimEnd());
}

function cell(value: string | number | null | undefined): string {
  return value === null || value === undefined || value === '' ? '-' : String(value);
}

/** An amount with its currency: `9.99 USD`. */
export function money(amount: string, currency: string): string {
  return `${amount} ${currency}`;
}
