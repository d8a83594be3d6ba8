/**
 * The admin API's JSON body parser. Amounts are judged by the text the client
 * wrote, as in the config (SPEC section 3): `"amount": 9.999999999999999999`
 * reaches the schema as that text and is refused, where JSON.parse would have
 * rounded it to 10 first. lossless-json keeps every number's text; the value
 * under an amount key stays text (the config's isAmountPath decides which),
 * every other number becomes a JS number. Duplicate keys with different
 * values and `__proto__` keys are refused.
 */
import { isLosslessNumber, parse } from 'lossless-json';
import { isAmountPath } from '../../config/index.js';

/** A body that is not JSON (or not acceptable JSON); the message says where. */
export class JsonBodyError extends Error {
  readonly statusCode = 400;
}

function reviver(this: unknown, key: string, value: unknown): unknown {
  if (key === '__proto__') throw new JsonBodyError('"__proto__" is not allowed as a key');
  if (!isLosslessNumber(value)) return value;
  return isAmountPath([key]) ? value.value : Number(value.value);
}

/** Parses a request body; an empty body is `undefined` (a POST action without a body). */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return parse(text, reviver as never);
  } catch (err) {
    if (err instanceof JsonBodyError) throw err;
    throw new JsonBodyError(`malformed JSON: ${(err as Error).message}`);
  }
}
