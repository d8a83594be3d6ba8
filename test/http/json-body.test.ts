/**
 * The API's body parser (src/http/api/json.ts) reads a body without numbers
 * with JSON.parse; every check of the lossless parse must still hold on that
 * path: duplicate keys, `__proto__`, the nesting limit, malformed text.
 */
import { describe, expect, it } from 'vitest';
import { JsonBodyError, MAX_JSON_DEPTH, parseJsonBody } from '../../src/http/api/json.js';

function refusal(text: string): { message: string; path: readonly unknown[] } {
  try {
    parseJsonBody(text);
  } catch (err) {
    expect(err).toBeInstanceOf(JsonBodyError);
    return { message: (err as JsonBodyError).message, path: (err as JsonBodyError).path };
  }
  throw new Error(`accepted: ${text}`);
}

describe('parseJsonBody on bodies without numbers', () => {
  it('gives what JSON.parse gives, strings with ":" "-" and digits included', () => {
    const text = '{"planId":"gold-1","startDate":"2099-01-01","customer":{"email":"a:b@example.com"},"metadata":{"k\\"1":"v\\\\"},"x":[true,null,[]]}';
    expect(parseJsonBody(text)).toEqual(JSON.parse(text));
  });

  it('accepts a duplicate key with the same value, refuses one with another value at its path', () => {
    expect(parseJsonBody('{"a": "1", "a": "1"}')).toEqual({ a: '1' });
    expect(refusal('{"metadata": {"a": "1", "a": "2"}}').path).toEqual(['metadata', 'a']);
  });

  it('refuses a __proto__ key wherever it is', () => {
    expect(refusal('{"customer": {"__proto__": {"email": "a@example.com"}}}').path).toEqual(['customer', '__proto__']);
    expect(refusal('[{"__proto__": "x"}]').path).toEqual([0, '__proto__']);
  });

  it(`refuses nesting deeper than ${MAX_JSON_DEPTH}, accepts it at the limit`, () => {
    const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
    expect(() => parseJsonBody(nested(MAX_JSON_DEPTH))).not.toThrow();
    expect(refusal(nested(MAX_JSON_DEPTH + 1)).message).toMatch(/nested deeper than 64/);
  });

  it('refuses malformed text with the lossless parser message', () => {
    expect(refusal('{"a": "1",}').message).toMatch(/^malformed JSON/);
  });

  it('still keeps an amount as its text when the body has numbers', () => {
    expect(parseJsonBody('{"amount": 9.999999999999999999, "sendOnHour": 9}')).toEqual({ amount: '9.999999999999999999', sendOnHour: 9 });
  });
});
