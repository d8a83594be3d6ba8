/**
 * Configuration problems: where each one is (file, line, column, key path) and
 * how it is printed. A config is refused as a whole, so every problem is
 * collected and reported at once instead of making the operator fix them one
 * restart at a time.
 */
import { RebillError } from '../errors.js';
import { isSecretKey } from '../logger.js';

/** One thing wrong with a configuration file, located as precisely as the source allows. */
export interface ConfigProblem {
  /** The file as the user named it, or `$REBILL_HTTP_PORT` for a value from an env override. */
  readonly file: string;
  /** 1-based; 0 when the value has no line (an env override, an unreadable file). */
  readonly line: number;
  /** 1-based; 0 when unknown. */
  readonly column: number;
  /** JS-style key path (`plans[2].every.unit`); empty for a problem with the file itself. */
  readonly path: string;
  readonly message: string;
}

/** A configuration (or scenario) file that cannot be used; carries every problem found. */
export class ConfigError extends RebillError {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super('CONFIG_INVALID', `invalid configuration:\n${formatProblems(problems).join('\n')}`);
  }
}

/** One key path segment: an object key or an array index. */
export type PathSegment = string | number;

/**
 * True when any key on the path names a secret (the logger's isSecretKey:
 * `apiKey`, `paymentToken`, `metadata.clientSecret`, ...): a config message
 * never shows the value there, only its kind.
 */
export function isSecretPath(path: readonly PropertyKey[]): boolean {
  return path.some((segment) => typeof segment === 'string' && isSecretKey(segment));
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/**
 * Renders a key path the way a JS developer reads it: `plans[2].every.unit`.
 * Keys that are not identifiers (a gateway named `coolpay-eu`) are bracketed
 * and quoted so the path stays unambiguous.
 */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/**
 * Renders problems one per line, compiler style, so editors and CI logs can
 * jump to them: `config/x.yaml:12:7: plans[2].every.unit: expected ...`.
 */
export function formatProblems(problems: readonly ConfigProblem[]): string[] {
  return problems.map((p) => {
    const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
    return p.path ? `${where}: ${p.path}: ${p.message}` : `${where}: ${p.message}`;
  });
}

/**
 * Edit distance counting a swap of neighbours as one edit (optimal string
 * alignment), since `prot` for `port` is the typo people actually make. Key
 * names are short, so the full table is fine.
 */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The allowed key closest to a mistyped one, if it is close enough to be a
 * plausible typo (case-insensitive, at most a third of the key's length away).
 */
export function suggestKey(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of allowed) {
    const d = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(key.length / 3)) ? best : undefined;
}

/** `unknown key (did you mean sendOnHour?)`, or the list of allowed keys when nothing is close. */
export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const suggestion = suggestKey(key, allowed);
  if (suggestion) return `unknown key (did you mean ${suggestion}?)`;
  return allowed.length > 0 ? `unknown key (allowed: ${allowed.join(', ')})` : 'unknown key';
}
