/**
 * Assertions for the admin API suites: a refused request is problem+json with
 * the right status and JSON pointers, and changed nothing in the database.
 */
import { expect } from 'vitest';
import type { ApiHarness, ApiResponse, CallOptions } from './api-harness.js';

/** Checks `res` is a problem+json answer with `status` and, when given, exactly these `errors[].pointer`s in order. */
export function expectProblem(res: ApiResponse, status: number, pointers?: readonly string[]): void {
  expect(res.status, res.text).toBe(status);
  expect(res.contentType).toMatch(/^application\/problem\+json(;|$)/);
  expect(res.body).toMatchObject({ type: expect.any(String), title: expect.any(String), status });
  // No stack trace or internal file name ever reaches a client.
  expect(res.text).not.toMatch(/\bat [^\s]+ \(|\.ts:\d+|node_modules/);
  if (pointers !== undefined) {
    expect((res.body.errors ?? []).map((e: { pointer?: string }) => e.pointer), res.text).toEqual(pointers);
  }
}

/**
 * Sends a request that must be refused with `status` (and `pointers`), and
 * checks that no table changed. With an Idempotency-Key the stored response
 * is the one change allowed, so `idempotency_keys` is left out of the comparison.
 */
export async function expectRefused(api: ApiHarness, method: string, path: string, call: CallOptions, status: number, pointers?: readonly string[]): Promise<ApiResponse> {
  const usesKey = Object.keys(call.headers ?? {}).some((h) => h.toLowerCase() === 'idempotency-key');
  const except = usesKey ? ['idempotency_keys'] : [];
  const before = await api.dump({ except });
  const res = await api.call(method, path, call);
  expectProblem(res, status, pointers);
  expect(await api.dump({ except })).toEqual(before);
  return res;
}

/** A raw JSON body text (as a client wrote it, numbers and all). */
export function raw(text: string): CallOptions {
  return { raw: text };
}
