/**
 * The admin API's JSON body parser. Amounts are judged by the text the client
 * wrote, as in the config (SPEC section 3): `"amount": 9.999999999999999999`
 * reaches the schema as that text and is refused, where JSON.parse would have
 * rounded it to 10 first. lossless-json keeps every number's text; the value
 * at an amount path stays text (the config's isAmountPath decides which),
 * every other number becomes a JS number. Duplicate keys with different
 * values and `__proto__` keys are refused.
 *
 * Every refusal names where in the body it is (a key path, which the API
 * turns into a JSON pointer), so a client sees `/metadata/a` and not only a
 * character position.
 */
import { isLosslessNumber, parse } from 'lossless-json';
import { isAmountPath, type PathSegment } from '../../config/index.js';

/** Bodies nested deeper than this are refused (ours are 3 deep); it also bounds the recursion below. */
export const MAX_JSON_DEPTH = 64;

/** A body that is not JSON (or not acceptable JSON); `path` is where, the message says what. */
export class JsonBodyError extends Error {
  readonly statusCode = 400;
  constructor(
    message: string,
    readonly path: readonly PathSegment[],
  ) {
    super(message);
  }
}

/** Parses a request body; an empty body is `undefined` (a POST action without a body). */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  const plain = parsePlain(text);
  if (plain !== undefined) return plain.value;
  let parsed: unknown;
  try {
    parsed = parse(text, null, {
      onDuplicateKey: ({ key, position }) => {
        // position is just after the key's opening quote.
        throw new JsonBodyError(`duplicate key "${key}" with another value`, [...pathAt(text, position - 1), key]);
      },
    });
  } catch (err) {
    if (err instanceof JsonBodyError) throw err;
    if (err instanceof RangeError) throw new JsonBodyError(`malformed JSON: nested deeper than ${MAX_JSON_DEPTH} levels`, []);
    const message = (err as Error).message;
    const position = /at position (\d+)/.exec(message);
    throw new JsonBodyError(`malformed JSON: ${message}`, position ? pathAt(text, Number(position[1])) : []);
  }
  return revive(parsed, []);
}

/**
 * The common body, one with no number in it, read by JSON.parse (ten times
 * faster than the lossless parse, a tenth of an API create's CPU): its value
 * is the one the lossless parse gives whenever the checks here pass. A number
 * (whose text may matter), malformed text, fewer keys parsed than the text
 * has (a duplicate key collapsed into one), a `__proto__` key or nesting past
 * MAX_JSON_DEPTH: undefined, and the lossless parse decides, and says what is
 * wrong.
 */
function parsePlain(text: string): { value: unknown } | undefined {
  // One pass over the text outside strings: a number starts with a digit or "-", and every ":" follows a key.
  let keys = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x3a /* : */) keys++;
    else if ((c >= 0x30 && c <= 0x39) || c === 0x2d /* - */) return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return plainKeys(value, 0) === keys ? { value } : undefined;
}

/** How many keys the objects in `value` have; -1 for a `__proto__` key or nesting past MAX_JSON_DEPTH (as revive refuses them). */
function plainKeys(value: unknown, depth: number): number {
  if (value === null || typeof value !== 'object') return 0;
  if (depth >= MAX_JSON_DEPTH) return -1;
  let count = 0;
  if (Array.isArray(value)) {
    for (const item of value) {
      const inner = plainKeys(item, depth + 1);
      if (inner < 0) return -1;
      count += inner;
    }
    return count;
  }
  for (const key of Object.keys(value)) {
    if (key === '__proto__') return -1;
    const inner = plainKeys((value as Record<string, unknown>)[key], depth + 1);
    if (inner < 0) return -1;
    count += inner + 1;
  }
  return count;
}

/** Numbers to JS numbers (amounts to their text), refusing `__proto__` keys and deep nesting. */
function revive(value: unknown, path: readonly PathSegment[]): unknown {
  if (isLosslessNumber(value)) return isAmountPath(path) ? value.value : Number(value.value);
  if (value === null || typeof value !== 'object') return value;
  if (path.length >= MAX_JSON_DEPTH) throw new JsonBodyError(`malformed JSON: nested deeper than ${MAX_JSON_DEPTH} levels`, path);
  if (Array.isArray(value)) return value.map((item, i) => revive(item, [...path, i]));
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (key === '__proto__') throw new JsonBodyError('"__proto__" is not allowed as a key', [...path, key]);
    out[key] = revive((value as Record<string, unknown>)[key], [...path, key]);
  }
  return out;
}

type Frame = { kind: 'object'; key: string | null; expectingKey: boolean } | { kind: 'array'; index: number };

/**
 * The key path of the value being read at character `end` of a JSON text that
 * is valid up to there (the parser stopped at `end`): a scan that tracks only
 * the open objects (their current key) and lists (their current index).
 */
export function pathAt(text: string, end: number): PathSegment[] {
  const stack: Frame[] = [];
  for (let i = 0; i < end && i < text.length; i++) {
    const c = text[i];
    const top = stack.at(-1);
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= end) break; // `end` is inside this string
      if (top?.kind === 'object' && top.expectingKey) {
        try {
          top.key = JSON.parse(text.slice(i, j + 1)) as string;
        } catch {
          top.key = text.slice(i + 1, j);
        }
      }
      i = j;
    } else if (c === '{') stack.push({ kind: 'object', key: null, expectingKey: true });
    else if (c === '[') stack.push({ kind: 'array', index: 0 });
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ':' && top?.kind === 'object') top.expectingKey = false;
    else if (c === ',' && top?.kind === 'object') {
      top.key = null;
      top.expectingKey = true;
    } else if (c === ',' && top?.kind === 'array') top.index++;
  }
  const path: PathSegment[] = [];
  for (const frame of stack) {
    if (frame.kind === 'array') path.push(frame.index);
    else if (frame.key !== null) path.push(frame.key);
    else break;
  }
  return path;
}
